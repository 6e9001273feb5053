"""Full-ranking evaluation, in batches of users.

Warm protocol (valid, test): leave-one-out; the target is ranked among every
catalog item the model knows (warm and cold). History items are not masked by
default (as RecBole); `mask_history=True` masks them. Ties count in the
target's favour (rank = number of items scored strictly higher).

Cold-start protocol: Split.cold cases (the target never occurs in any training
sequence). The target is ranked among the held-out (cold) items only. The
reference is popularity: cold items ordered by their interaction count in the
workspace (this includes the held-out interactions, so it is an optimistic
reference). SASRec scores cold items with their ID embeddings, which were
only ever trained as negatives; it is reported as it scores.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from core import distributed
from core.data import Case, Dataset, left_pad

KS = (5, 10, 20, 50)


def metrics_from_ranks(ranks: np.ndarray, ks=KS) -> dict:
    """ranks: 0-based rank of each target. Recall (= hit rate), NDCG and MRR at each k."""
    out = {}
    r = np.asarray(ranks)
    n = max(len(r), 1)
    for k in ks:
        hit = r < k
        out[f"recall@{k}"] = float(hit.sum() / n)
        out[f"ndcg@{k}"] = float((1.0 / np.log2(r[hit] + 2)).sum() / n)
        out[f"mrr@{k}"] = float((1.0 / (r[hit] + 1)).sum() / n)
    out["cases"] = len(r)
    return out


def mine(cases: list) -> list:
    """This rank's share of the cases (all of them in one process)."""
    return cases[distributed.rank()::distributed.world_size()]


def reduce_metrics(ranks: np.ndarray, ks=KS) -> dict:
    """metrics_from_ranks over every rank's share: the per-rank sums are all-reduced."""
    if not distributed.active():
        return metrics_from_ranks(ranks, ks)
    r = np.asarray(ranks)
    sums = [len(r)]
    for k in ks:
        hit = r < k
        sums += [hit.sum(), (1.0 / np.log2(r[hit] + 2)).sum(), (1.0 / (r[hit] + 1)).sum()]
    tot = distributed.all_reduce_sum(torch.tensor(np.array(sums, dtype=np.float64))).tolist()
    n, out = max(tot[0], 1), {}
    for j, k in enumerate(ks):
        out[f"recall@{k}"], out[f"ndcg@{k}"], out[f"mrr@{k}"] = (x / n for x in tot[1 + 3 * j:4 + 3 * j])
    out["cases"] = int(tot[0])
    return out


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


@torch.no_grad()
def rank_cases(model, cases: list[Case], max_len: int, batch: int = 512,
               candidates: np.ndarray | None = None, mask_history: bool = False,
               table: torch.Tensor | None = None) -> np.ndarray:
    """0-based rank of each case's target among all items (or among `candidates`, model indices)."""
    if not cases:
        return np.zeros(0, dtype=np.int64)
    model.eval()
    device = next(model.parameters()).device
    with _autocast(device):
        table = model.item_table() if table is None else table
        # column of each model index in the score matrix (-1: not a candidate / padding)
        col_of = torch.arange(-1, model.n_items, device=device)
        if candidates is not None:
            cand = torch.as_tensor(candidates, device=device)
            table = table[cand - 1]
            col_of = torch.full_like(col_of, -1)
            col_of[cand] = torch.arange(len(cand), device=device)
        ranks = []
        for start in range(0, len(cases), batch):
            chunk = cases[start:start + batch]
            inp = torch.from_numpy(left_pad([h for h, _ in chunk], max_len)).to(device)
            tgt = torch.tensor([t for _, t in chunk], device=device)
            scores = (model.user_vectors(inp) @ table.T).float()      # [B, N or C]
            col = col_of[tgt]
            if (col < 0).any():
                raise ValueError("a target is not among the candidates")
            rows = torch.arange(len(chunk), device=device)
            target = scores[rows, col]
            if mask_history:
                hist = col_of[inp]
                hrows = rows.unsqueeze(1).expand_as(hist)
                ok = hist >= 0
                scores[hrows[ok], hist[ok]] = float("-inf")
            scores[rows, col] = float("-inf")
            ranks.append((scores > target.unsqueeze(1)).sum(1).cpu())
    return torch.cat(ranks).numpy()


def evaluate(model, ds: Dataset, max_len: int, parts=("valid", "test"), batch: int = 512,
             mask_history: bool = False, cold: bool = True) -> dict:
    """{"valid": metrics, "test": metrics, "cold": {"model": .., "popularity": ..}}."""
    out = {}
    with torch.no_grad():
        model.eval()
        table = model.item_table()
    for part in parts:
        ranks = rank_cases(model, mine(getattr(ds, part)), max_len, batch, mask_history=mask_history,
                           table=table)
        out[part] = reduce_metrics(ranks)
    if cold and ds.cold:
        out["cold"] = cold_start(model, ds, max_len, batch, table=table)
    return out


def cold_start(model, ds: Dataset, max_len: int, batch: int = 512, table=None) -> dict:
    cases = mine([(h, t) for h, t in ds.cold])  # this rank's share (all in one process)
    ranks = rank_cases(model, cases, max_len, batch, candidates=ds.cold_items, table=table)
    return {"model": reduce_metrics(ranks),
            "popularity": reduce_metrics(popularity_ranks(ds, cases)),
            "candidates": int(len(ds.cold_items))}


def popularity_ranks(ds: Dataset, cases: list[Case], candidates: np.ndarray | None = None) -> np.ndarray:
    """Rank of each target when the candidates (default: cold items) are ordered by popularity."""
    cand = ds.cold_items if candidates is None else candidates
    pop = ds.popularity[cand]
    return np.array([int((pop > ds.popularity[t]).sum()) for _, t in cases], dtype=np.int64)


def flat(metrics: dict, prefix: str = "") -> dict:
    """{"test": {"ndcg@10": x}} -> {"test/ndcg@10": x}: the manifest's flat metrics."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}/"))
        elif isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
            out[f"{prefix}{k}"] = v
    return out
