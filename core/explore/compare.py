"""Two or three models side by side on one sequence, and their stored metrics.

    c = compare(ws, {"msm4sr": rec_a, "sasrec": rec_b}, ["1", "260"], k=10)
    c.top["sasrec"]        # [(item, score)], best first
    c.overlap              # {"msm4sr|sasrec": items in both top-k}
    c.rows                 # one row per item in any top-k: rank in each model (None = absent)
    c.metrics              # stored_metrics(manifest) per model

Ranks are 1-based. rank_change[name] = rank in the first model - rank in that model
(positive: this model ranks it higher); None where either lacks it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path

from core.errors import InputError

METRICS = ("recall@10", "ndcg@10")


@dataclass
class Comparison:
    models: list[str]
    sequence: list[str]
    k: int
    top: dict[str, list[tuple[str, float]]]
    overlap: dict[str, int]
    rows: list[dict]
    metrics: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["top"] = {m: [{"item": i, "score": round(s, 6)} for i, s in t] for m, t in self.top.items()}
        return d


def stored_metrics(manifest: dict, folder=None) -> dict:
    """{"valid": {...}, "test": {...}, "cold": {...}, "cold_popularity": {...},
    "test_popularity": {...}} with recall@10 and ndcg@10 from the manifest (flat keys
    "valid/recall@10", "cold/model/...", "cold/popularity/..."); a part with no numbers is
    None (for example a model never evaluated). test_popularity comes from a metrics.json
    beside the model when there (the shipped demo model has one)."""
    flat = manifest.get("metrics") or {}
    out = {}
    for name, prefix in (("valid", "valid/"), ("test", "test/"), ("cold", "cold/model/"),
                         ("cold_popularity", "cold/popularity/")):
        got = {m: flat.get(prefix + m) for m in METRICS}
        out[name] = got if any(v is not None for v in got.values()) else None
    out["test_popularity"] = None
    if folder is not None and (Path(folder) / "metrics.json").is_file():
        try:
            pop = json.loads((Path(folder) / "metrics.json").read_text()).get("popularity_test") or {}
        except (OSError, ValueError):
            pop = {}
        if any(m in pop for m in METRICS):
            out["test_popularity"] = {m: pop.get(m) for m in METRICS}
    out["evaluated"] = out["test"] is not None
    return out


def compare(ws, recs: dict, sequence, k: int = 10, exclude_sequence: bool = False) -> Comparison:
    """Top-k of each model (2 or 3, in the given order) for one sequence, with the pairwise
    overlap of their top-k and each item's rank per model."""
    if not 2 <= len(recs) <= 3:
        raise InputError(f"--models: give two or three models, got {len(recs)}")
    if k < 1:
        raise InputError(f"-k {k}: give at least 1")
    sequence = list(sequence)
    ban = sequence if exclude_sequence else ()
    names = list(recs)
    top = {n: r.recommend(sequence, k=k, exclude=ban) for n, r in recs.items()}
    sets = {n: {i for i, _ in t} for n, t in top.items()}
    overlap = {f"{a}|{b}": len(sets[a] & sets[b]) for a, b in combinations(names, 2)}
    if len(names) == 3:
        overlap["|".join(names)] = len(sets[names[0]] & sets[names[1]] & sets[names[2]])
    ranks = {n: {i: r for r, (i, _) in enumerate(t, 1)} for n, t in top.items()}
    order = []
    for n in names:
        order += [i for i, _ in top[n] if i not in order]
    rows = []
    first = names[0]
    for i in order:
        it = ws.item(i)
        rk = {n: ranks[n].get(i) for n in names}
        change = {n: (rk[first] - rk[n] if rk[first] is not None and rk[n] is not None else None)
                  for n in names[1:]}
        rows.append({"item": i, "title": it.title if it else "", "ranks": rk, "in_all": all(
            v is not None for v in rk.values()), "rank_change": change})
    metrics = {n: stored_metrics(r.manifest, r.folder) for n, r in recs.items()}
    return Comparison(names, sequence, k, top, overlap, rows, metrics)


def model_names(paths: list) -> list[str]:
    """Short distinct names for model folders: the folder name, else parent/folder."""
    names = [Path(p).name for p in paths]
    if len(set(names)) < len(names):
        names = [f"{Path(p).parent.name}/{Path(p).name}" for p in paths]
    if len(set(names)) < len(names):
        names = [f"{n}#{k}" for k, n in enumerate(names, 1)]
    return names
