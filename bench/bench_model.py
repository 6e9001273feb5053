"""Benchmark: MSM4SR against SASRec and MSM4SR's ablations on a real data set, one run,
the same wall-clock budget per model, side by side.

    .venv/bin/python bench/bench_model.py --dataset scientific           # 30 min per model
    .venv/bin/python bench/bench_model.py --dataset ml-1m --quick        # 1,000 users, 1 min each
    .venv/bin/python bench/bench_model.py --dataset ml-1m --models sasrec,msm4sr,ln --budget-min 10

Data: ../shared/datasets (ml-1m-posters: dense, posters; amazon-scientific: sparse, text
only), imported and featurised once by bench/workspaces.py (5 % of items held out as
cold-start). Every model trains with the library's defaults (core/config.py) plus its own
overrides below, until early stopping or until its budget runs out (checked after each
epoch); MSM4SR spends at most a sixth of it pre-training.

Reported for each model: test Recall/NDCG@10 with history not masked (RecBole's protocol,
VQ-Rec's and MISSRec's) and masked (SASRec+'s, gSASRec's); cold-start Recall/NDCG@10 among
held-out items, with the popularity oracle; the attention gap (mean over test users, rows,
heads and layers of max |a - 1/n|: 0 is a mean-pooler); throughput; the valid curve.
Ties in scores count as a random tie-break, scores are float32 (core/evaluate.py).
Writes bench/results/bench_model_<dataset>[_quick][_tag].json after each model.
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
sys.path.insert(0, str(REPO / "bench"))
RESULTS = REPO / "bench" / "results"

# name -> (overrides, what it tests); "msm4sr" is the baseline of every ablation
PLANS = {
    "sasrec": ({"model": "sasrec"}, "the ID-only baseline"),
    "msm4sr": ({}, "MSM4SR with the library's defaults"),
    "no-pretrain": ({"pretrain": False}, "fine-tuning from scratch"),
    "no-nip": ({"nip": False}, "pre-training without next-item prediction"),
    "ln": ({"expert_norm": True}, "MoE experts end in a LayerNorm (the authors' code)"),
    "all-sentences": ({"text_vectors": 0}, "every text vector pooled: title sentence + description"),
    "title-only": ({"text_vectors": 1}, "text from the title/brand/category sentence alone"),
    "4-positions": ({"nip_positions": 4}, "NIP on 4 random positions per window, not all"),
    "no-early-stop": ({"pretrain_patience": 0}, "pre-training keeps its last epoch"),
    "cross-cmcl": ({"cmcl_negatives": "cross"}, "CMCL without intra-modal negatives"),
    "proj-heads": ({"proj_heads": True}, "projection heads in pre-training"),
    "paper": ({"preset": "paper"}, "the paper's optimiser and fine-tuning settings"),
}


def log(*a):
    print(*a, flush=True)


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def applicable(name: str, modalities: list[str]) -> str | None:
    """Why an ablation cannot run on this workspace (None: it can)."""
    over = PLANS[name][0]
    two = len(modalities) == 2
    if not over.get("nip", True) and not two:
        return "text-only: without NIP nothing is left to pre-train (CMCL needs two modalities)"
    if ("cmcl_negatives" in over or "proj_heads" in over) and not two:
        return "text-only: CMCL needs two modalities"
    return None


def run_one(ws, name: str, overrides: dict, budget_s: float | None) -> dict:
    from core.cli_model import evaluate_checkpoint
    from core.config import load_config
    from core.train import Trainer
    over = dict(overrides)
    preset = over.pop("preset", None)
    sasrec = over.get("model") == "sasrec"
    no_pre = sasrec or over.get("pretrain") is False
    if budget_s is not None:   # None (--no-clock): stages end by their epochs and patience only
        over.update(finetune_minutes=budget_s / 60 * (1 if no_pre else 5 / 6))
        if not no_pre:
            over["pretrain_minutes"] = budget_s / 360
    cfg = load_config(overrides=over, preset=preset)
    t0 = time.perf_counter()
    curve = []

    def on_event(e):
        if e["event"] == "epoch":
            v = e.get("valid") or {}
            curve.append({"stage": e["stage"], "epoch": e["epoch"], "wall_s": round(time.perf_counter() - t0, 1),
                          "epoch_s": e["seconds"], **v})
            log(f"  {name} {e['stage']} {e['epoch']}: {e['seconds']:.1f}s  valid ndcg@10 "
                f"{v.get('ndcg@10', float('nan')):.4f} recall@10 {v.get('recall@10', float('nan')):.4f}")

    res = Trainer(ws, cfg, f"bench-{name}-{time.strftime('%m%d-%H%M%S')}", on_event).fit("train")
    wall = time.perf_counter() - t0
    masked = evaluate_checkpoint(ws, res.model_dir, mask_history=True, device=cfg.device)
    m = res.metrics
    pick = lambda d, keys=("recall@10", "ndcg@10", "recall@20", "ndcg@20"): {k: d[k] for k in keys}  # noqa: E731
    done = {s: json.loads((res.run_dir / s / "done.json").read_text()) for s in res.epochs}
    return {
        "name": name, "what": PLANS.get(name, ({}, ""))[1], "overrides": overrides,
        "config": cfg.to_dict(), "wall_s": round(wall, 1), "eval_pass_s": masked["seconds"],
        "epochs": res.epochs, "best_epoch": {s: d["best_epoch"] for s, d in done.items()},
        "timing": res.timing, "curve": curve,
        "valid": pick(m["valid"]), "test": pick(m["test"]), "test_masked": pick(masked["test"]),
        "cold": {w: pick(m["cold"][w]) for w in ("model", "popularity")} if "cold" in m else None,
        "attention_gap": m.get("attention_gap"), "peak_rss_gb": round(peak_rss_gb(), 2),
        "model_dir": str(res.model_dir),
    }


def table(results: dict) -> str:
    head = (f"{'model':<15}{'ep':>7}{'R@10':>8}{'N@10':>8}{'mR@10':>8}{'mN@10':>8}{'cR@10':>8}"
            f"{'pop':>7}{'att':>7}{'ft it/s':>9}{'wall':>7}")
    lines = [head, "-" * len(head)]
    base = results["models"].get("sasrec")
    for name, r in results["models"].items():
        if r.get("skipped"):
            lines.append(f"{name:<15}  not run: {r['skipped']}")
            continue
        c = r["cold"] or {"model": {}, "popularity": {}}
        ep = "+".join(str(r["epochs"][s]) for s in ("pretrain", "finetune") if s in r["epochs"])
        ft = r["timing"].get("finetune", {}).get("items_per_s", 0)
        lines.append(f"{name:<15}{ep:>7}{r['test']['recall@10']:>8.4f}{r['test']['ndcg@10']:>8.4f}"
                     f"{r['test_masked']['recall@10']:>8.4f}{r['test_masked']['ndcg@10']:>8.4f}"
                     f"{c['model'].get('recall@10', 0):>8.4f}{c['popularity'].get('recall@10', 0):>7.4f}"
                     f"{r['attention_gap'] or 0:>7.3f}{ft:>9.0f}{r['wall_s']:>7.0f}")
    lines.append("R/N: test, history not masked; mR/mN: masked; cR: cold-start (held-out items); "
                 "pop: popularity oracle; att: attention gap")
    if base and not base.get("skipped"):
        for name, r in results["models"].items():
            if name != "sasrec" and not r.get("skipped"):
                lines.append(f"{name} / sasrec: N@10 {r['test']['ndcg@10'] / base['test']['ndcg@10']:.3f}x, "
                             f"masked N@10 {r['test_masked']['ndcg@10'] / base['test_masked']['ndcg@10']:.3f}x")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=("ml-1m", "scientific"), default="ml-1m")
    ap.add_argument("--quick", action="store_true", help="first 1000 users, 1 minute per model")
    ap.add_argument("--users", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--budget-min", type=float, default=None, help="wall-clock budget per model (30)")
    ap.add_argument("--no-clock", action="store_true",
                    help="no wall-clock budget: every stage ends by its epochs and patience, so the "
                         "figures do not depend on the machine's load (times are still printed)")
    ap.add_argument("--models", default="sasrec,msm4sr,no-pretrain",
                    help=f"comma-separated, from: {', '.join(PLANS)}")
    ap.add_argument("--set", action="append", default=[], help="extra key=value for every model")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=V[,KEY=V]",
                    help="an exploratory model: MSM4SR's defaults plus these settings, run after "
                         "--models under NAME (e.g. ft-temp:finetune_temperature=0.05)")
    ap.add_argument("--clip", action="store_true", help="CLIP keywords (needs weights; fails without)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--tag", default="", help="suffix of the results file (keeps runs apart)")
    args = ap.parse_args(argv)
    import torch
    from core.config import parse_sets
    from workspaces import prepare
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.models.split(",")
    for v in args.variant:
        name, _, sets = v.partition(":")
        if not name or not sets or name in PLANS:
            raise SystemExit(f"--variant expects NAME:KEY=V[,KEY=V] with a new name, got {v!r}")
        PLANS[name] = (parse_sets(sets.split(",")), f"exploratory: {sets}")
        names.append(name)
    unknown = [n for n in names if n not in PLANS]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; known: {', '.join(PLANS)}")
    users = args.users or (1000 if args.quick else None)
    budget = 60 * (args.budget_min or (1.0 if args.quick else 30))
    RESULTS.mkdir(parents=True, exist_ok=True)
    ws, info = prepare(args.dataset, users, 0.05, args.clip, log=log)
    if args.clip and "image" not in info["features"]:
        raise SystemExit(f"--clip: the workspace has no image features ({info['features']})")
    log(f"features used: {', '.join(info['features'])}")
    common = {"device": args.device, **parse_sets(args.set)}
    if args.quick:
        common.setdefault("patience", 3)
    results = {"dataset": args.dataset, "device": args.device, "users": users or "all",
               "torch_threads": torch.get_num_threads(),
               "budget_s_per_model": None if args.no_clock else budget,
               "workspace": info, "features": info["features"], "clip": args.clip,
               "workspace_reused": info["reused"], "common": common, "started": time.strftime("%Y-%m-%d %H:%M"),
               "models": {}}
    tag = f"_{args.dataset}" + ("_quick" if args.quick else (f"_{users}u" if users else ""))
    tag += f"_{args.device}" if args.device != "cpu" else ""
    tag += f"_{args.tag}" if args.tag else ""
    out = RESULTS / f"bench_model{tag}.json"
    for name in names:
        why = applicable(name, info["features"]) if name != "sasrec" else None
        if why:
            log(f"== {name}: not run ({why})")
            results["models"][name] = {"skipped": why}
            continue
        log(f"== {name}: {PLANS[name][1]}")
        r = run_one(ws, name, {**common, **PLANS[name][0]}, None if args.no_clock else budget)
        results["models"][name] = r
        log(json.dumps({k: r[k] for k in ("epochs", "test", "test_masked", "cold", "attention_gap", "wall_s")}))
        out.write_text(json.dumps(results, indent=1))  # after each model: partial results survive
    log(f"\nwritten {out}\n")
    log(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
