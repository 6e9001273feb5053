"""Time to quality from a bench_model results file: the valid NDCG@10 curve of each model
against wall time, and when each first reached SASRec's best valid NDCG@10 and a
valid Recall@10 of 0.285.

    .venv/bin/python bench/curve.py bench/results/bench_model.json [--every 120]
"""
from __future__ import annotations

import argparse
import json
import sys


def first_time(curve: list[dict], key: str, level: float):
    for point in curve:
        if point["stage"] == "finetune" and point.get(key, -1) >= level:
            return point["wall_s"]
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--every", type=float, default=120, help="seconds between printed curve points")
    args = ap.parse_args(argv)
    res = json.load(open(args.results))
    models = res["models"]
    bar = max((p["ndcg@10"] for p in models.get("sasrec", {}).get("curve", [])), default=None)
    print(f"device {res['device']}, users {res['users']}, budget {res['budget_s_per_model'] / 60:.0f} min per model")
    fmt = lambda t: "never" if t is None else f"{t / 60:.1f} min"  # noqa: E731
    print(f"\n| model | best valid N@10 | reached SASRec's best ({bar or 0:.4f}) | valid R@10 >= 0.285 |")
    print("| --- | --- | --- | --- |")
    for name, r in models.items():
        best = max((p["ndcg@10"] for p in r["curve"] if p["stage"] == "finetune"), default=0)
        at_bar = first_time(r["curve"], "ndcg@10", bar) if bar else None
        print(f"| {name} | {best:.4f} | {fmt(at_bar)} | {fmt(first_time(r['curve'], 'recall@10', 0.285))} |")
    print("\nvalid NDCG@10 against wall time (last evaluated epoch at or before each time)")
    names = list(models)
    print("| minutes | " + " | ".join(names) + " |")
    print("| --- |" + " --- |" * len(names))
    end = max(p["wall_s"] for r in models.values() for p in r["curve"])
    t = args.every
    while t < end + args.every:
        row = []
        for name in names:
            seen = [p for p in models[name]["curve"] if p["wall_s"] <= t]
            row.append(f"{seen[-1]['ndcg@10']:.4f} ({seen[-1]['stage'][:2]})" if seen else "")
        print(f"| {t / 60:.1f} | " + " | ".join(row) + " |")
        t += args.every
    return 0


if __name__ == "__main__":
    sys.exit(main())
