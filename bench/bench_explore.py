"""The explore tools' speed on ml-1m-posters (target: explain <= 100 ms for a 50-item
sequence over 3.4k items).

Builds a workspace of all 6,040 users and 3,416 items with feature tensors of the real
shapes (10 x 384 per modality; values made here, since quality is not what is measured)
and models of the default size saved as fine-tuned checkpoints without training (the
time does not depend on the weights' values), then prints, side by side:
  explain   leave-one-out over a 50-item sequence (one batched pass) + attention + shared words
  similar   by model vectors and by text features
  compare   MSM4SR vs SASRec top-10
  map       PCA at 100k x 64 (synthetic vectors), the cache write and read at 100k;
            with --umap also UMAP at --umap-items (minutes on a few cores)
Run: .venv/bin/python bench/bench_explore.py [--repeats 30] [--threads N] [--umap --umap-items 20000]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
ML1M = REPO.parent / "shared" / "datasets" / "ml-1m-posters"


def timed(fn, repeats: int) -> list[float]:
    fn()   # warm-up: first calls allocate
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def line(name: str, xs: list[float], target: float | None = None) -> str:
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, int(0.95 * len(xs)))]
    tail = f"  target {target:.0f} ms ({statistics.median(xs) / target:.2f}x)" if target else ""
    return f"{name:<22} median {statistics.median(xs):8.1f} ms  p95 {p95:8.1f} ms{tail}"


def untrained(ws, model: str, name: str) -> Path:
    from core.checkpoint import save_model
    from core.config import load_config
    from core.data import load_dataset
    from core.model import build
    from core.train import manifest_for
    cfg = load_config(overrides={"model": model})
    ds = load_dataset(ws, cfg)
    dims = ds.dims()
    m = build(cfg, len(ds.item_ids), dims.get("text"), dims.get("image")) if model == "msm4sr" \
        else build(cfg, len(ds.item_ids), None, None)
    if model == "msm4sr":
        m.use_ids = True   # as after fine-tuning
    return save_model(ws.models_dir / name, m, manifest_for(m, cfg, ds, "finetune", {}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--length", type=int, default=50, help="sequence length for explain")
    ap.add_argument("--map-items", type=int, default=100_000)
    ap.add_argument("--umap", action="store_true", help="also time UMAP (minutes)")
    ap.add_argument("--umap-items", type=int, default=20_000)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if not ML1M.exists():
        print(f"{ML1M} not found", file=sys.stderr)
        return 1
    import numpy as np
    import torch
    from model_fixtures import make_workspace
    from core.explore import compare, explain, similar
    from core.explore import map as mapmod
    from core.recommend import Recommender
    if args.threads:
        torch.set_num_threads(args.threads)

    tmp = Path(tempfile.mkdtemp(prefix="bench-explore-"))
    t = time.perf_counter()
    ws = make_workspace(tmp / "ws", ML1M, users=10_000, cold_share=0.0, dim=384, vectors=10)
    print(f"workspace: {len(ws.item_ids())} items, {ws.counts()['users']} users "
          f"({time.perf_counter() - t:.1f} s); torch threads {torch.get_num_threads()}")
    rec = Recommender.load(untrained(ws, "msm4sr", "msm4sr"), ws)
    sas = Recommender.load(untrained(ws, "sasrec", "sasrec"), ws)
    seqs = [s[:args.length] for s in ws.sequences().values() if len(s) >= args.length]
    targets = [rec.recommend(s, k=1)[0][0] for s in seqs[:args.repeats]]
    k = iter(range(10 ** 9))

    def one_explain():
        j = next(k) % len(targets)
        explain(ws, rec, seqs[j], targets[j])
    print(line(f"explain ({args.length} items)", timed(one_explain, args.repeats), 100))
    # the same machine's one-pass refresh, for scale: explain is n+1 sequences plus attention
    print(line("recommend (1 pass)", timed(lambda: rec.recommend(seqs[next(k) % len(seqs)], k=10),
                                           args.repeats)))
    items = rec.item_ids
    print(line("similar by model", timed(lambda: similar(ws, rec, items[next(k) % len(items)]), args.repeats)))
    print(line("similar by text", timed(lambda: similar(ws, None, items[next(k) % len(items)], by="text"),
                                        args.repeats)))
    print(line("compare (2 models)", timed(lambda: compare(ws, {"a": rec, "b": sas}, seqs[0], k=10),
                                           args.repeats)))
    x = np.random.default_rng(0).standard_normal((args.map_items, 64)).astype(np.float32)
    print(line(f"map PCA {args.map_items // 1000}k x 64", timed(lambda: mapmod.pca_2d(x), 5)))
    xy = mapmod.pca_2d(x)
    path = tmp / "map.safetensors"
    ids = [str(i) for i in range(len(x))]
    print(line(f"map cache write {args.map_items // 1000}k", timed(lambda: mapmod._write_cache(path, xy, {}), 5)))
    print(line(f"map cache read {args.map_items // 1000}k", timed(lambda: mapmod._read_cache(path, ids), 5)))
    if args.umap:
        t = time.perf_counter()
        import umap  # noqa: F401
        print(f"{'umap import':<22} {time.perf_counter() - t:8.1f} s")
        t = time.perf_counter()
        mapmod.umap_2d(x[:args.umap_items])
        print(f"{f'map UMAP {args.umap_items // 1000}k x 64':<22} {time.perf_counter() - t:8.1f} s "
              "(includes numba compilation on a first run)")
    ws.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
