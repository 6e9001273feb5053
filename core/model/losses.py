"""MSM4SR's pre-training losses over L2-normalised vectors: next-item prediction (NIP)
and cross-modality contrastive learning (CMCL). Both use in-batch negatives.

Where the authors' code (lzz0007/MP4SR, mp4sr.py) does otherwise, and why we differ:
- Their masked "same next item" logits are set to 0 (so each still adds exp(0) = 1 to the
  denominator); here they are left out entirely, which is what the masking means to do.
- Their second CMCL direction reuses the first direction's cross-modal terms; here both
  directions are the standard symmetric NT-Xent (SimCLR), each anchor against all others.
- Several queries from one training window (our windows train many positions at once;
  RecBole trains one prefix per sample) share most of their history: CMCL does not treat
  them as negatives of each other, as it does not treat sequences with the same next item.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def nip_loss(queries: list[torch.Tensor], items: torch.Tensor, label: torch.Tensor,
             scale: float) -> torch.Tensor:
    """Next-item prediction in one item space.

    queries: one or more [Q, H] views of the same Q queries (with projection heads: each
    mixed sequence mapped into this space); items [U, H] the distinct next items of the
    batch; label [Q] the index of each query's next item. One view: cross-entropy. Several:
    the authors' joint form, -log(sum_views e^pos / sum_views sum_items e^logit)."""
    logits = [q @ items.T * scale for q in queries]
    if len(logits) == 1:
        return F.cross_entropy(logits[0], label)
    pos = torch.stack([lg.gather(1, label[:, None]).squeeze(1) for lg in logits], 1)
    return (torch.logsumexp(torch.cat(logits, 1), 1) - torch.logsumexp(pos, 1)).mean()


def cmcl_loss(a: torch.Tensor, b: torch.Tensor, y: torch.Tensor, group: torch.Tensor,
              scale: float, intra: bool = True) -> torch.Tensor:
    """Symmetric InfoNCE between two views of each query (a[i] and b[i] are positives).

    intra=True (the authors' form): each anchor's negatives are every other vector of both
    views (cross- and intra-modal). intra=False: the other view's vectors only.
    Pairs with the same next item `y`, or from the same window `group`, are not negatives."""
    n = len(y)
    if not intra:
        logits = a @ b.T * scale
        same = (y[:, None] == y[None, :]) | (group[:, None] == group[None, :])
        logits = logits.masked_fill(same & ~torch.eye(n, dtype=torch.bool, device=y.device), float("-inf"))
        diag = torch.arange(n, device=y.device)
        return 0.5 * (F.cross_entropy(logits, diag) + F.cross_entropy(logits.T, diag))
    z = torch.cat([a, b])
    yy, gg = torch.cat([y, y]), torch.cat([group, group])
    idx = torch.arange(2 * n, device=y.device)
    partner = (idx + n) % (2 * n)
    drop = (yy[:, None] == yy[None, :]) | (gg[:, None] == gg[None, :])   # includes self
    drop[idx, partner] = False
    logits = (z @ z.T * scale).masked_fill(drop, float("-inf"))
    return F.cross_entropy(logits, partner)
