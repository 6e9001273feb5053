"""SASRec (Kang & McAuley 2018) with cross-entropy over all items (Klenitskiy &
Vasilev 2023): the ID-only baseline. Same transformer, trainer and evaluator as MSM4SR.

Items never seen in training (cold-start) keep whatever their ID embedding
became (they are only ever negatives), so SASRec scores them as it scores them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core import distributed
from core.config import Config
from core.model.layers import SeqEncoder, init_weights
from core.model.sampled import sampled_cross_entropy, use_sampled


class SASRec(nn.Module):
    modalities: list[str] = []

    def __init__(self, cfg: Config, n_items: int):
        super().__init__()
        self.cfg, self.n_items = cfg, n_items
        self.item_emb = nn.Embedding(n_items + 1, cfg.hidden, padding_idx=0)
        self.encoder = SeqEncoder(cfg.hidden, cfg.layers, cfg.heads, cfg.inner, cfg.max_len,
                                  cfg.dropout, cfg.attn_dropout)
        init_weights(self)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        self.sampler = None   # a NegativeSampler when training uses the sampled softmax

    def loss(self, inp: torch.Tensor, tgt: torch.Tensor, stage: str = "finetune", gen=None, shard=None):
        seq = self.encoder(self.item_emb(inp), inp == 0)
        valid = tgt > 0
        user, y = seq[valid], tgt[valid]
        if shard is not None:  # data-parallel: the mean over the global batch's targets
            user, y = distributed.all_gather(user), distributed.all_gather(y)
        if use_sampled(self.cfg, self.n_items):
            cand, label, log_incl = self.sampler.candidates(y, gen)
            ce = sampled_cross_entropy(user, label, self.item_emb(cand), log_incl)
        else:
            ce = F.cross_entropy(user @ self.item_emb.weight[1:].T, y - 1)
        return ce, {"ce": ce}

    def item_table(self) -> torch.Tensor:
        return self.item_emb.weight[1:]

    def user_vectors(self, inp: torch.Tensor, extra=None) -> torch.Tensor:
        return self.encoder(self.item_emb(inp.clamp(min=0)), inp == 0)[:, -1]

    def attention(self, inp: torch.Tensor, extra=None) -> list[torch.Tensor]:
        _, weights = self.encoder(self.item_emb(inp.clamp(min=0)), inp == 0, need_weights=True)
        return weights
