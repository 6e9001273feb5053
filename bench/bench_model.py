"""Benchmark: MSM4SR (pre-train + fine-tune) vs SASRec vs MSM4SR without pre-training
on ml-1m-posters, with real text features (and CLIP keywords where weights exist).

    .venv/bin/python bench/bench_model.py --quick        # ~1000 users, a few minutes
    .venv/bin/python bench/bench_model.py                # all 6,040 users (long on a CPU)

Prints the figures and writes bench/results/bench_model[_quick].json. The workspace
(import + features) is cached under bench/results/ so reruns start training at once.
MSM4SR fine-tunes with lr 1e-3 and no weight decay here (the library's defaults are the
paper's 1e-4 and 1e-3; see docs/benchmarks.md). Each model trains until early stopping
or until its wall-clock budget runs out (--budget-min, checked after each epoch); the curve
of valid NDCG@10 against wall time is recorded (bench/curve.py prints it).
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "datasets" / "ml-1m-posters"
RESULTS = REPO / "bench" / "results"


def log(*a):
    print(*a, flush=True)


def make_workspace(path: Path, users: int | None, cold_share: float, clip: bool):
    """Import ml-1m-posters (optionally its first `users` users) and build features, once."""
    from core.workspace import Workspace
    if (path / "features" / "text.safetensors").is_file():
        return Workspace.open(path)
    from core.features.build import build_features
    from core.importers import ImportOptions, import_catalog
    ws = Workspace.create(path)
    inter = DATA / "interactions.tsv"
    if users:
        # a user subset: a temporary TSV outside the repository
        sub = path / "subset-interactions.tsv"
        seen, lines = set(), []
        with open(inter) as f:
            lines.append(f.readline())
            for line in f:
                u = line.split("\t", 1)[0]
                if u not in seen and len(seen) >= users:
                    continue
                seen.add(u)
                lines.append(line)
        sub.write_text("".join(lines))
        inter = sub
    t0 = time.perf_counter()
    rep = import_catalog(ws, "movielens", {"movies": DATA / "movies.dat", "interactions": inter,
                                           "posters": DATA / "posters"},
                         ImportOptions(kcore=5, cold_share=cold_share))
    log(f"import: {rep.users} users, {rep.items} items, {rep.interactions} interactions, "
        f"{rep.cold_items} cold, {time.perf_counter() - t0:.0f}s")
    t0 = time.perf_counter()
    try:
        build_features(ws, keywords_from="clip" if clip else "none")
    except Exception as e:  # no CLIP weights here: text only
        log(f"features with CLIP failed ({e}); text only")
        build_features(ws, keywords_from="none")
    log(f"features: {time.perf_counter() - t0:.0f}s")
    return ws


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def run_one(ws, name: str, overrides: dict, which: str):
    from core.config import load_config
    from core.train import Trainer
    cfg = load_config(overrides=overrides)
    t0 = time.perf_counter()
    curve = []

    def on_event(e):
        if e["event"] == "epoch":
            v = e.get("valid") or {}
            curve.append({"stage": e["stage"], "epoch": e["epoch"], "wall_s": round(time.perf_counter() - t0, 1),
                          "epoch_s": e["seconds"], **v})
            log(f"  {name} {e['stage']} epoch {e['epoch']}: {e['seconds']:.1f}s "
                f"valid ndcg@10 {v.get('ndcg@10', float('nan')):.4f} recall@10 {v.get('recall@10', float('nan')):.4f}")

    run = f"bench-{name}-{time.strftime('%H%M%S')}"
    res = Trainer(ws, cfg, run, on_event).fit(which)
    total = time.perf_counter() - t0
    # one full evaluation pass (valid + test + cold), timed
    from core.cli_model import evaluate_checkpoint
    # the timed pass also gives the figures with history items masked (ML-1M has no repeats)
    masked = evaluate_checkpoint(ws, res.model_dir, mask_history=True, device=cfg.device)
    eval_s = masked["seconds"]
    m = res.metrics
    out = {"name": name, "config": overrides, "wall_s": round(total, 1), "eval_pass_s": round(eval_s, 2),
           "epochs": res.epochs, "timing": res.timing, "curve": curve,
           "test": {k: m["test"][k] for k in ("recall@10", "ndcg@10", "ndcg@20", "mrr@10")},
           "test_masked_history": {k: masked["test"][k] for k in ("recall@10", "ndcg@10", "ndcg@20")},
           "valid": {k: m["valid"][k] for k in ("recall@10", "ndcg@10", "ndcg@20")},
           "cold": {who: {k: m["cold"][who][k] for k in ("recall@10", "ndcg@10")}
                    for who in ("model", "popularity")} if "cold" in m else None,
           "peak_rss_gb": round(peak_rss_gb(), 2), "model_dir": str(res.model_dir)}
    # time to reach the quality target (valid NDCG@10 of the fine-tuning curve)
    return out


def latency(ws, model_dir) -> dict:
    """Recommender refresh time after a sequence edit (ms), median of 50."""
    import statistics
    from core.recommend import Recommender
    t0 = time.perf_counter()
    rec = Recommender.load(model_dir, ws)
    load_s = time.perf_counter() - t0
    seqs = list(ws.sequences().values())[:50]
    times = []
    for s in seqs:
        t = time.perf_counter()
        rec.recommend(s[-50:], k=10)
        times.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    rec.attention(seqs[0][-50:])
    att = (time.perf_counter() - t) * 1000
    return {"load_s": round(load_s, 2), "recommend_ms_median": round(statistics.median(times), 2),
            "recommend_ms_max": round(max(times), 2), "attention_ms": round(att, 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="first 1000 users, short budgets")
    ap.add_argument("--users", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--budget-min", type=float, default=None, help="wall-clock budget per model")
    ap.add_argument("--models", default="sasrec,msm4sr,msm4sr-nopretrain")
    ap.add_argument("--set", action="append", default=[], help="extra key=value for every model")
    ap.add_argument("--clip", action="store_true", help="try CLIP keywords (needs weights)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--tag", default="", help="suffix of the results file (keeps runs apart)")
    args = ap.parse_args(argv)
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    users = args.users or (1000 if args.quick else None)
    budget = 60 * (args.budget_min or (1.0 if args.quick else 30))
    RESULTS.mkdir(parents=True, exist_ok=True)
    ws = make_workspace(RESULTS / (f"ws-ml1m-{users}u" if users else "ws-ml1m"), users, 0.05, args.clip)
    from core.config import parse_sets
    # fine-tuning settings that reach quality soonest on ML-1M (docs/benchmarks.md); --set wins
    common = {"device": args.device, "finetune_lr": 1e-3, "finetune_weight_decay": 0.0,
              **parse_sets(args.set)}
    if args.quick:
        common.update(patience=3)
    # each model gets the same wall-clock budget; MSM4SR spends a sixth of it pre-training
    # (on ML-1M a fine-tuning epoch gains more than a pre-training one; see docs/benchmarks.md)
    plans = {
        "sasrec": ({"model": "sasrec", "finetune_minutes": budget / 60}, "train"),
        "msm4sr": ({"model": "msm4sr", "pretrain_minutes": budget / 360,
                    "finetune_minutes": 5 * budget / 360}, "train"),
        "msm4sr-nopretrain": ({"model": "msm4sr", "pretrain": False, "finetune_minutes": budget / 60}, "train"),
    }
    results = {"device": args.device, "users": users or "all", "torch_threads": torch.get_num_threads(),
               "budget_s_per_model": budget, "models": {}}
    tag = "_quick" if args.quick else (f"_{users}u" if users else "")
    tag += f"_{args.device}" if args.device != "cpu" else ""
    tag += f"_{args.tag}" if args.tag else ""
    out = RESULTS / f"bench_model{tag}.json"
    for name in args.models.split(","):
        over, which = plans[name]
        log(f"== {name}")
        r = run_one(ws, name, {**common, **over}, which)
        r["latency"] = latency(ws, r["model_dir"])
        results["models"][name] = r
        log(json.dumps({k: r[k] for k in ("test", "cold", "wall_s", "eval_pass_s", "peak_rss_gb",
                                          "timing", "latency")}))
        out.write_text(json.dumps(results, indent=1))  # after each model: partial results survive
    log(f"\nwritten {out}")
    log(f"{'model':<20}{'R@10':>8}{'N@10':>8}{'N@20':>8}{'coldR@10':>10}{'coldN@10':>10}{'popR@10':>9}"
        f"{'wall s':>8}{'items/s ft':>11}{'masked R@10':>12}")
    for name, r in results["models"].items():
        c = r["cold"] or {"model": {}, "popularity": {}}
        ft = r["timing"].get("finetune", {}).get("items_per_s", 0)
        log(f"{name:<20}{r['test']['recall@10']:>8.4f}{r['test']['ndcg@10']:>8.4f}{r['test']['ndcg@20']:>8.4f}"
            f"{c['model'].get('recall@10', 0):>10.4f}{c['model'].get('ndcg@10', 0):>10.4f}"
            f"{c['popularity'].get('recall@10', 0):>9.4f}{r['wall_s']:>8.0f}{ft:>11.0f}"
            f"{r['test_masked_history']['recall@10']:>12.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
