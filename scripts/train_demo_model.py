#!/usr/bin/env python3
"""Train the shipped demo model: MSM4SR (pre-train, then fine-tune) on the demo
workspace, on the CPU, in a few minutes; write trained_models/demo/.

    .venv/bin/python scripts/train_demo_model.py [--pretrain-epochs 30] [--finetune-epochs 30]

The model is trained on the workspace that core.demo.ensure_demo_workspace
builds (same item ids, same text and catalog-tag image features), so the app
loads it against that workspace. Test metrics are compared with a popularity
baseline (items ranked by their count in the training sequences) and written to
trained_models/demo/metrics.json.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.demo import DEMO_MODEL, DEMO_SEQUENCE, ensure_demo_workspace  # noqa: E402
from core.progress import TerminalProgress  # noqa: E402

# Small and quick: the demo has ~400 items and ~2,500 short sequences.
SETTINGS = {"hidden": 64, "layers": 2, "heads": 2, "inner": 128, "max_len": 50,
            "pool_dim": 32, "experts": 4, "pretrain_batch": 256, "finetune_batch": 256,
            "finetune_lr": 1e-3, "patience": 5, "device": "cpu", "seed": 42}


def popularity_baseline(ds) -> dict:
    """Test metrics of 'recommend the most bought items' (training-sequence counts)."""
    from core.evaluate import count_ranks, metrics_from_ranks
    counts = np.zeros(ds.n_items + 1, dtype=np.int64)
    for seq in ds.train:
        np.add.at(counts, np.asarray(seq), 1)
    # ranked as the model is: ties broken at random
    targets = np.array([t for _, t in ds.test], dtype=np.int64)
    return metrics_from_ranks(count_ranks(counts[1:], counts[targets]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pretrain-epochs", type=int, default=30)
    ap.add_argument("--finetune-epochs", type=int, default=30)
    ap.add_argument("--minutes", type=float, default=10.0,
                    help="wall-clock cap of each stage (early stopping usually ends fine-tuning first)")
    ap.add_argument("--out", type=Path, default=DEMO_MODEL)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="more config overrides (see core/config.py)")
    args = ap.parse_args(argv)

    from core.config import load_config, parse_sets
    from core.data import load_dataset
    from core.recommend import Recommender
    from core.train import train
    from core.workspace import Workspace

    t0 = time.perf_counter()
    bar = TerminalProgress()
    ws_path = ensure_demo_workspace(bar)
    bar.close()
    t_ws = time.perf_counter() - t0
    overrides = dict(SETTINGS, pretrain_epochs=args.pretrain_epochs,
                     finetune_epochs=args.finetune_epochs, pretrain_minutes=args.minutes,
                     finetune_minutes=args.minutes)
    overrides.update(parse_sets(args.set))
    cfg = load_config(overrides=overrides)

    def on_event(e: dict) -> None:
        if e.get("event") in ("epoch", "start", "done", "cancelled", "error"):
            keep = {k: v for k, v in e.items() if k not in ("config",)}
            print(json.dumps(keep)[:300], file=sys.stderr, flush=True)

    with Workspace.open(ws_path) as ws:
        t1 = time.perf_counter()
        result = train(ws, cfg, "train", run=f"demo-{time.strftime('%Y%m%d-%H%M%S')}",
                       on_event=on_event)
        t_train = time.perf_counter() - t1
        ds = load_dataset(ws, cfg)
        baseline = popularity_baseline(ds)

        out = args.out
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(result.model_dir, out)
        rec = Recommender.load(out, ws)   # the shipped copy loads against a fresh demo workspace
        seq = ws.load_sequence(DEMO_SEQUENCE)
        top = rec.recommend(seq, k=10, exclude=seq)

    test = result.metrics.get("test", {})
    report = {
        "model": "msm4sr", "epochs": result.epochs, "seconds": {
            "workspace": round(t_ws, 1), "train": round(t_train, 1)},
        "test": {k: test.get(k) for k in ("recall@10", "ndcg@10", "recall@20", "ndcg@20", "cases")},
        "popularity_test": {k: baseline[k] for k in ("recall@10", "ndcg@10", "recall@20", "ndcg@20",
                                                      "cases")},
        "valid": {k: result.metrics.get("valid", {}).get(k) for k in ("recall@10", "ndcg@10")},
        "demo_sequence": seq, "demo_recommendations": [i for i, _ in top],
        "config": {k: v for k, v in overrides.items()},
        "note": "trained on simulated interactions; see assets/demo/README.md",
    }
    (out / "metrics.json").write_text(json.dumps(report, indent=1) + "\n")
    size = sum(p.stat().st_size for p in out.iterdir())
    print(json.dumps(report, indent=1))
    print(f"wrote {out} ({size / 1e6:.2f} MB) in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
