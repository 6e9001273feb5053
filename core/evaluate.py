"""Full-ranking evaluation, in batches of users, with scores in float32.

Warm protocol (valid, test): leave-one-out; the target is ranked among every
catalog item the model knows (warm and cold). History items are not masked by
default (as RecBole, VQ-Rec and MISSRec); `mask_history=True` masks them (as
SASRec+ and gSASRec).

Ties: a rank is a pair (above, tied): the items scored strictly higher, and the
other items scored exactly the same. The metrics are their expected values when
ties are broken at random, so the target takes each of the places above ..
above + tied with equal chance: a model that scores every item the same gets
what chance gets (Recall@10 = 10/N), never a perfect score. A NaN score counts
above the target; a NaN target counts below every item.

Cold-start protocol: Split.cold cases (the target never occurs in any training
sequence). The target is ranked among the held-out (cold) items only. The
reference is popularity: cold items ordered by their interaction count over the
whole workspace, the held-out interactions and test targets included. No real
shop can know those counts for a new item, so it is an oracle: a hard reference,
not a deployable baseline (counted over training alone, every cold item would
tie at zero). It is ranked with the same tie rule. SASRec scores cold items with
their ID embeddings, which were only ever trained as negatives; it is reported
as it scores.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from core import distributed
from core.data import Case, Dataset, left_pad

KS = (5, 10, 20, 50)
TIES = "expected value under random tie-breaking"
POPULARITY = ("held-out items ordered by their interaction count over the whole workspace, "
              "test targets included: an oracle no shop has for a new item")


def _as_pairs(ranks) -> tuple[np.ndarray, np.ndarray]:
    """ranks: [n] (no ties) or [n, 2] (above, tied) -> (above, tied) int arrays."""
    r = np.asarray(ranks, dtype=np.int64)
    if r.ndim == 1:
        return r, np.zeros_like(r)
    return r[:, 0], r[:, 1]


def _metric_sums(ranks, ks=KS) -> np.ndarray:
    """[cases, then recall, ndcg, mrr summed over cases for each k] (float64).

    Each case's metric is its mean over the places above .. above+tied (random tie-break):
    sums of a discount d(r) over r in [above, min(above+tied, k-1)], divided by tied+1."""
    above, tied = _as_pairs(ranks)
    out = [float(len(above))]
    top = max(ks)
    r = np.arange(top, dtype=np.float64)
    cum_ndcg = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(r + 2))])
    cum_mrr = np.concatenate([[0.0], np.cumsum(1.0 / (r + 1))])
    span = tied.astype(np.float64) + 1
    for k in ks:
        lo = np.minimum(above, k)
        hi = np.minimum(above + tied + 1, k)            # places lo .. hi-1 fall inside the top k
        out += [float(((hi - lo) / span).sum()),
                float(((cum_ndcg[hi] - cum_ndcg[lo]) / span).sum()),
                float(((cum_mrr[hi] - cum_mrr[lo]) / span).sum())]
    return np.array(out, dtype=np.float64)


def _from_sums(sums, ks=KS) -> dict:
    n, out = max(sums[0], 1.0), {}
    for j, k in enumerate(ks):
        out[f"recall@{k}"], out[f"ndcg@{k}"], out[f"mrr@{k}"] = (float(x / n) for x in sums[1 + 3 * j:4 + 3 * j])
    out["cases"] = int(sums[0])
    return out


def metrics_from_ranks(ranks, ks=KS) -> dict:
    """Recall (= hit rate), NDCG and MRR at each k from 0-based ranks ([n], or [n, 2] with ties)."""
    return _from_sums(_metric_sums(ranks, ks), ks)


def mine(cases: list) -> list:
    """This rank's share of the cases (all of them in one process)."""
    return cases[distributed.rank()::distributed.world_size()]


def reduce_metrics(ranks, ks=KS) -> dict:
    """metrics_from_ranks over every rank's share: the per-rank sums are all-reduced."""
    sums = _metric_sums(ranks, ks)
    if distributed.active():
        sums = distributed.all_reduce_sum(torch.tensor(sums)).numpy()
    return _from_sums(sums, ks)


@torch.no_grad()
def rank_cases(model, cases: list[Case], max_len: int, batch: int = 512,
               candidates: np.ndarray | None = None, mask_history: bool = False,
               table: torch.Tensor | None = None, item_chunk: int | None = None,
               inputs: dict | None = None) -> np.ndarray:
    """[n, 2] int64: for each case, the items (all, or `candidates`, model indices) scored
    above its target and those tied with it. Float32 throughout, never autocast.
    `item_chunk`: items scored at once (default: what fits SCORE_BUDGET with `batch` users).
    `inputs`: every item's vectors (item_inputs), so histories are not re-encoded per batch."""
    if not cases:
        return np.zeros((0, 2), dtype=np.int64)
    model.eval()
    device = next(model.parameters()).device
    with torch.autocast(device.type, enabled=False):
        return _rank_fp32(model, cases, max_len, batch, candidates, mask_history, table, device,
                          item_chunk, inputs)


SCORE_BUDGET = 2 ** 26  # score-matrix elements held at once (256 MB of float32)


def item_inputs(model) -> dict | None:
    """A content model's vectors of every item (row = model index), computed once for a whole
    evaluation, in chunks that leave no feature-file pages resident; None for SASRec."""
    return model.all_item_vectors() if hasattr(model, "all_item_vectors") else None


def _users(model, inp, inputs):
    if inputs is None:
        return model.user_vectors(inp)
    return model.user_vectors_from({m: v[inp] for m, v in inputs.items()}, inp == 0)


def _rank_fp32(model, cases, max_len, batch, candidates, mask_history, table, device, item_chunk=None,
               inputs=None):
    if table is None:   # every item encoded once, for the table and the histories alike
        inputs = item_inputs(model) if inputs is None else inputs
        table = model.item_table() if inputs is None else model.table_from(inputs)
    table = table.float()
    # column of each model index in the score matrix (-1: not a candidate / padding)
    col_of = torch.arange(-1, model.n_items, device=device)
    if candidates is not None:
        cand = torch.as_tensor(candidates, device=device)
        table = table[cand - 1]
        col_of = torch.full_like(col_of, -1)
        col_of[cand] = torch.arange(len(cand), device=device)
    n_cols = table.shape[0]
    # large catalogs are scored in column chunks, so memory is bounded at any N
    # no chunk of one item: a [B, 1] product runs another BLAS kernel (matrix-vector), whose
    # rounding can split a tie that every wider product keeps exact
    width = max(2, item_chunk or max(4096, SCORE_BUDGET // max(batch, 1)))
    spans = [[c, min(c + width, n_cols)] for c in range(0, n_cols, width)]
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] == 1:
        spans[-2][1] = spans.pop()[1]
    out = []
    for start in range(0, len(cases), batch):
        chunk = cases[start:start + batch]
        inp = torch.from_numpy(left_pad([h for h, _ in chunk], max_len)).to(device)
        tgt = torch.tensor([t for _, t in chunk], device=device)
        user = _users(model, inp, inputs).float()
        col = col_of[tgt]
        if (col < 0).any():
            raise ValueError("a target is not among the candidates")
        rows = torch.arange(len(chunk), device=device)
        hist = col_of[inp] if mask_history else None
        if len(spans) == 1:
            target = None
        else:  # the target's score from the same product as its rivals' (ties stay exact)
            target = torch.empty(len(chunk), device=device)
            for lo, hi in spans:
                sel = (col >= lo) & (col < hi)
                if sel.any():
                    target[sel] = (user @ table[lo:hi].T)[rows[sel], col[sel] - lo]
        counts = torch.zeros(len(chunk), 2, dtype=torch.int64, device=device)
        for lo, hi in spans:
            scores = user @ table[lo:hi].T                              # [B, chunk]
            mine_ = (col >= lo) & (col < hi)
            if target is None:
                target = scores[rows, col]
            t = torch.where(torch.isnan(target), float("-inf"), target).unsqueeze(1)
            scores = scores.nan_to_num(nan=float("inf"))               # a NaN item counts above
            # left out of both counts: NaN compares false with everything
            if hist is not None:
                hrows = rows.unsqueeze(1).expand_as(hist)
                ok = (hist >= lo) & (hist < hi)
                scores[hrows[ok], hist[ok] - lo] = float("nan")
            scores[rows[mine_], col[mine_] - lo] = float("nan")
            counts[:, 0] += (scores > t).sum(1)
            counts[:, 1] += (scores == t).sum(1)
        out.append(counts.cpu())
    return torch.cat(out).numpy().astype(np.int64)


@torch.no_grad()
def attention_gap(model, cases: list[Case], max_len: int, batch: int = 512, inputs: dict | None = None) -> float:
    """Mean over cases, query rows, heads and layers of max_j |a_j - 1/n|, n = the keys a
    row may see. 0 means every row is uniform: the transformer only averages its inputs.
    Rows of padding and rows with a single key (which cannot be anything but 1) are left out."""
    total = torch.zeros((), dtype=torch.float64)
    rows = torch.zeros((), dtype=torch.float64)
    model.eval()
    device = next(model.parameters()).device
    for start in range(0, len(cases), batch):
        inp = torch.from_numpy(left_pad([h for h, _ in cases[start:start + batch]], max_len)).to(device)
        real = inp > 0
        L = inp.shape[1]
        allowed = torch.ones(L, L, dtype=torch.bool, device=device).tril() & real[:, None, :]  # [B, L, L]
        n = real.cumsum(1).clamp(min=1)                                  # keys query i may see
        keep = real & (n > 1)                                           # [B, L]
        maps = model.attention(inp) if inputs is None else \
            model.attention_from({m: v[inp] for m, v in inputs.items()}, inp == 0)
        for a in maps:                                                  # [B, heads, L, L]
            dev = (a.float() - 1.0 / n[:, None, :, None]).abs().masked_fill(~allowed[:, None], 0.0)
            gap = dev.amax(-1)                                          # [B, heads, L]
            total += gap[keep[:, None, :].expand_as(gap)].double().sum().cpu()
            rows += keep.sum().cpu() * gap.shape[1]
    sums = torch.stack([total, rows])
    if distributed.active():
        sums = distributed.all_reduce_sum(sums)
    return float(sums[0] / sums[1]) if sums[1] > 0 else 0.0


def evaluate(model, ds: Dataset, max_len: int, parts=("valid", "test"), batch: int = 512,
             mask_history: bool = False, cold: bool = True) -> dict:
    """{"valid": metrics, "test": metrics, "cold": {"model": .., "popularity": ..}, "ties": ..,
    "attention_gap": gap over the test users}."""
    out = {"ties": TIES, "mask_history": mask_history}
    with torch.no_grad():
        model.eval()
        inputs = item_inputs(model)
        table = model.item_table() if inputs is None else model.table_from(inputs)
    for part in parts:
        ranks = rank_cases(model, mine(getattr(ds, part)), max_len, batch, mask_history=mask_history,
                           table=table, inputs=inputs)
        out[part] = reduce_metrics(ranks)
    if cold and ds.cold:
        out["cold"] = cold_start(model, ds, max_len, batch, table=table, inputs=inputs)
    out["attention_gap"] = attention_gap(model, mine(ds.test), max_len, batch, inputs)
    return out


def cold_start(model, ds: Dataset, max_len: int, batch: int = 512, table=None, inputs=None) -> dict:
    cases = mine([(h, t) for h, t in ds.cold])  # this rank's share (all in one process)
    ranks = rank_cases(model, cases, max_len, batch, candidates=ds.cold_items, table=table, inputs=inputs)
    return {"model": reduce_metrics(ranks),
            "popularity": reduce_metrics(popularity_ranks(ds, cases)),
            "candidates": int(len(ds.cold_items)), "popularity_is": POPULARITY}


def popularity_ranks(ds: Dataset, cases: list[Case], candidates: np.ndarray | None = None) -> np.ndarray:
    """[n, 2] (above, tied) of each target when the candidates (default: cold items, which
    hold every target) are ordered by their count over all interactions (see POPULARITY)."""
    cand = ds.cold_items if candidates is None else candidates
    return count_ranks(ds.popularity[cand], ds.popularity[np.array([t for _, t in cases], dtype=np.int64)])


def count_ranks(cand_counts: np.ndarray, target_counts: np.ndarray) -> np.ndarray:
    """[n, 2] (above, tied) of targets among candidates ordered by a count; each target is
    one of the candidates, so it is not counted as tied with itself."""
    pop = np.sort(cand_counts)
    right = np.searchsorted(pop, target_counts, side="right")
    left = np.searchsorted(pop, target_counts, side="left")
    return np.stack([len(pop) - right, np.maximum(right - left - 1, 0)], 1).astype(np.int64)


def flat(metrics: dict, prefix: str = "") -> dict:
    """{"test": {"ndcg@10": x}} -> {"test/ndcg@10": x}: the manifest's flat metrics."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}/"))
        elif isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
            out[f"{prefix}{k}"] = v
    return out
