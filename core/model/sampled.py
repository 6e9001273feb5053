"""Sampled softmax for large catalogs (fine-tuning and SASRec).

The full softmax scores every query against all N items: [targets x N] logits, 25 GB
at 1M items for one batch of 6,400 targets. Here each step scores against the batch's
own targets (in-batch negatives) plus `n` negatives drawn uniformly or by training
popularity (SASRec+, Klenitskiy & Vasilev 2023: 3,000 sampled negatives match the
full softmax).

logQ correction: an item j enters the candidate set with probability
pi_j = 1 - (1 - f_j)^T (1 - q_j)^n (a target of one of the T queries, or drawn), so
sum_{j in C} exp(s_j) / pi_j estimates the full partition function without bias
(Horvitz-Thompson). Each logit is therefore corrected by -log pi_j, except the
query's own positive, whose term is known exactly.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

SAMPLERS = ("uniform", "popularity")


class NegativeSampler:
    def __init__(self, counts: np.ndarray, n: int, mode: str = "uniform"):
        """counts [N+1]: how often each item index is a training target (row 0: padding)."""
        if mode not in SAMPLERS:
            raise ValueError(f"negative sampler must be one of {SAMPLERS}, got {mode!r}")
        c = torch.as_tensor(np.asarray(counts, dtype=np.float64)[1:])
        self.n_items, self.n, self.mode = len(c), int(n), mode
        self.f = c / c.sum().clamp(min=1.0)                       # target distribution
        if mode == "uniform":
            self.q = torch.full_like(c, 1.0 / len(c))
        else:  # +1: every item keeps a chance to be drawn
            self.q = (c + 1.0) / (c + 1.0).sum()
        self._log1m_f, self._log1m_q = torch.log1p(-self.f.clamp(max=1 - 1e-12)), torch.log1p(-self.q)

    @classmethod
    def for_dataset(cls, train: list, n_items: int, n: int, mode: str = "uniform") -> "NegativeSampler":
        counts = np.zeros(n_items + 1, dtype=np.int64)
        for s in train:
            np.add.at(counts, s[1:], 1)      # the first item of a sequence is never a target
        return cls(counts, n, mode)

    def candidates(self, y: torch.Tensor, gen: torch.Generator | None = None):
        """y [T] target indices (1-based) -> (cand [C] item indices, label [T] column of each
        target in cand, log_incl [C] float32 log inclusion probabilities). Same draws on every
        rank when `gen` is seeded alike."""
        if self.mode == "uniform":
            neg = torch.randint(1, self.n_items + 1, (self.n,), generator=gen)
        else:
            neg = torch.multinomial(self.q, self.n, replacement=True, generator=gen) + 1
        cand, inv = torch.unique(torch.cat([y.cpu(), neg]), return_inverse=True)
        label = inv[:len(y)]
        r = cand - 1
        log_out = len(y) * self._log1m_f[r] + self.n * self._log1m_q[r]   # log P(not in C)
        log_incl = torch.log(-torch.expm1(log_out).clamp(max=-1e-30)).float()
        dev = y.device
        return cand.to(dev), label.to(dev), log_incl.to(dev)


def sampled_cross_entropy(user: torch.Tensor, label: torch.Tensor, cand_vecs: torch.Tensor,
                          log_incl: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of queries [T, K] over candidate vectors [C, K] with logQ correction."""
    logits = user @ cand_vecs.T                                   # [T, C]
    corr = log_incl.unsqueeze(0).expand_as(logits)
    own = F.one_hot(label, logits.shape[1]).bool()
    logits = logits - torch.where(own, torch.zeros_like(corr), corr.to(logits.dtype))
    return F.cross_entropy(logits, label)


def use_sampled(cfg, n_items: int) -> bool:
    """The loss a config asks for at this catalog size (softmax = auto | full | sampled)."""
    if cfg.softmax == "auto":
        return n_items > cfg.full_softmax_max_items
    return cfg.softmax == "sampled"
