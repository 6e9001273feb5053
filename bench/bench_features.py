"""Feature extraction timings on ml-1m-posters (../shared/datasets/ml-1m-posters).

    .venv/bin/python bench/bench_features.py [--data DIR] [--limit N] [--keep DIR]
    .venv/bin/python bench/bench_features.py --compare 500

--compare N: text encoding only, on the first N items of ml-1m-posters and of
amazon-scientific, side by side in one process: the old path (every sentence encoded in
fp32, 64 items a call), TextEncoder in fp32 (each distinct sentence once) and TextEncoder
with its default precision ("auto": bf16 autocast on a CPU with native bf16), with items/s,
the ratios and the lowest cosine of each to the old path's vectors.

Steps: import (core.importers, or the items parsed directly when it is missing), text
features for every item (target <= 60 s on a 2-core CPU), then image keywords with a
TINY RANDOM CLIP over all posters: a code-path timing only (image loading, zero-shot
scoring, keyword vectors, storage), not the cost of real ViT-B-32 weights. Prints the
seconds of each step, items/s, peak memory (ru_maxrss; target < 3 GB) and the ratio
to each target. The CPU may be shared with other processes: say so with the figures.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TEXT_TARGET_S = 60.0
MEMORY_TARGET_GB = 3.0


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # Linux: KiB


def import_items(ws, data: Path, limit: int | None) -> tuple[str, float]:
    t0 = time.perf_counter()
    try:
        from core.importers import ImportOptions, import_catalog
    except ImportError:
        import_catalog = None
    if import_catalog is not None and limit is None:
        import_catalog(ws, "movielens", {"movies": data / "movies.dat",
                                         "ratings": data / "interactions.tsv",
                                         "posters": data / "posters"}, ImportOptions())
        how = "core.importers (movielens)"
    else:
        from core.workspace import Item
        used = {line.split("\t")[1] for line in
                (data / "interactions.tsv").read_text().splitlines()[1:] if line}
        items = []
        for line in (data / "movies.dat").read_text(encoding="latin-1").splitlines():
            mid, title, genres = line.split("::")
            if mid in used:
                poster = data / "posters" / f"{mid}.jpg"
                items.append(Item(id=mid, title=title, categories=genres,
                                  image=str(poster) if poster.exists() else None))
        with ws.transaction() as db:
            ws.upsert_items(items[:limit], db)
        how = "items parsed directly"
    return how, time.perf_counter() - t0


def compare_items(name: str, limit: int) -> list:
    """The first `limit` items of a shared data set, as its importer builds them."""
    from core.workspace import Item
    root = REPO.parent / "shared" / "datasets" / name
    items = []
    if name == "ml-1m-posters":
        for line in (root / "movies.dat").read_text(encoding="latin-1").splitlines()[:limit]:
            mid, title, genres = line.split("::")
            items.append(Item(id=mid, title=title, categories=genres))
        return items
    import gzip
    from core.importers.amazon2018 import parse_meta_line
    with gzip.open(root / "meta.json.gz", "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            items.append(parse_meta_line(line, root / "meta.json.gz", n)[0])
            if len(items) == limit:
                break
    return items


def compare(limit: int) -> int:
    import torch
    from core.features.text import TextEncoder, item_sentences, native_bf16
    fp32, auto = TextEncoder(precision="fp32"), TextEncoder()
    print(f"cpu threads {torch.get_num_threads()} (load average {os.getloadavg()[0]:.1f}); "
          f"native bf16 {native_bf16()}, auto = {auto.precision}; {limit} items a data set, "
          f"64 items a call")
    for name in ("ml-1m-posters", "amazon-scientific"):
        sents = [item_sentences(it) for it in compare_items(name, limit)]
        calls = [[x for ss in sents[s:s + 64] for x in ss] for s in range(0, len(sents), 64)]
        flat = sum(calls, [])
        paths = {"old": lambda c: fp32.st.encode(c, batch_size=64, convert_to_tensor=True,
                                                 show_progress_bar=False).float().cpu(),
                 "fp32": fp32.encode, auto.precision if auto.precision != "fp32" else "auto": auto.encode}
        seconds, vectors = {}, {}
        for path, encode in paths.items():
            t0 = time.perf_counter()
            vectors[path] = torch.cat([encode(c) for c in calls])
            seconds[path] = time.perf_counter() - t0
        print(f"{name:18} {len(sents)} items, {len(flat)} sentences ({len(set(flat))} distinct)")
        for path in paths:
            cos = torch.nn.functional.cosine_similarity(vectors["old"], vectors[path]).min().item()
            print(f"  {path:5} {len(sents) / seconds[path]:7.1f} items/s  x{seconds['old'] / seconds[path]:.2f} "
                  f"of old  x{seconds['fp32'] / seconds[path]:.2f} of fp32  min cosine to old {cos:.6f}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--compare", type=int, metavar="N", default=None,
                    help="text encoding only, old path against today's on N items of each data set")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "ml-1m-posters")
    ap.add_argument("--limit", type=int, default=None, help="only the first N items (quick check)")
    ap.add_argument("--keep", type=Path, default=None, help="workspace folder to keep")
    args = ap.parse_args()
    if args.compare:
        return compare(args.compare)
    if not (args.data / "movies.dat").exists():
        print(f"no data at {args.data}", file=sys.stderr)
        return 1

    import torch
    import tiny_clip
    from core.features import store
    from core.features.build import build_features, text_encoder
    from core.workspace import Workspace

    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-features-"))
    ws = Workspace.create(root / "ws")
    how, t_import = import_items(ws, args.data, args.limit)
    n = len(ws.item_ids())
    print(f"cpu threads       {torch.get_num_threads()} (os.cpu_count {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f})")
    print(f"import            {t_import:7.1f} s  {n:,} items ({how})")

    t0 = time.perf_counter()
    text_encoder()
    t_load = time.perf_counter() - t0
    print(f"load MiniLM       {t_load:7.1f} s")

    c0 = time.process_time()
    report = build_features(ws, keywords_from="none")
    t_text, c_text = report.seconds["text"], time.process_time() - c0
    print(f"text features     {t_text:7.1f} s  {n / t_text:7.1f} items/s  "
          f"target <= {TEXT_TARGET_S:.0f} s: ratio {t_text / TEXT_TARGET_S:.2f}  "
          f"(process CPU {c_text:.1f} s over {torch.get_num_threads()} threads)")

    t0 = time.perf_counter()
    report = build_features(ws, keywords_from="none")
    print(f"text rerun        {time.perf_counter() - t0:7.1f} s  (content-hash cache: "
          f"{report.text_computed} re-encoded)")

    weights = tiny_clip.save_weights(root / "tiny-clip.safetensors")
    c0 = time.process_time()
    report = build_features(ws, clip_model=tiny_clip.register(), clip_weights=weights)
    c_img = time.process_time() - c0
    s = report.seconds
    n_img = report.image_items
    print(f"vocabulary        {s['vocabulary']:7.1f} s  (tiny random CLIP text tower)")
    print(f"image keywords    {s['keywords']:7.1f} s  {n_img / s['keywords']:7.1f} images/s  "
          f"[TINY RANDOM CLIP: code-path timing only]; {len(report.images_missing)} without "
          f"image, {len(report.images_failed)} failed; process CPU {c_img:.1f} s with vocabulary")
    image = store.load(ws.features_dir, "image")
    print(f"image features    {tuple(image.vectors.shape)} vocab_sha256 "
          f"{image.meta['vocab_sha256'][:12]}")
    gb = peak_gb()
    print(f"peak memory       {gb:7.2f} GB  target < {MEMORY_TARGET_GB:.0f} GB: "
          f"ratio {gb / MEMORY_TARGET_GB:.2f}")
    print(f"workspace         {root}" + ("" if args.keep else " (temporary)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
