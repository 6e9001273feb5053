"""Latencies that the tests count instead of timing:

- encode_items for one user-added item once a build has loaded the models (target < 30 s;
  the test checks that the cached models are reused),
- CLIP weight loading giving up offline (target < 20 s; the test checks that no connection
  or download is tried) and with an unreachable hub (target < 10 s; one short probe).

    .venv/bin/python bench/bench_latency.py [--data DIR]

The image path uses a tiny random CLIP (tests/tiny_clip.py): a code-path timing, not the cost
of real ViT-B-32 weights. The CPU may be shared with other processes: load_avg says so.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
DEFAULT = REPO.parent / "shared" / "datasets" / "ml-1m-posters"
WORDS = ["dog", "cat", "car", "tree", "house", "mountain", "ocean", "face", "gun", "explosion",
         "city", "night", "fire", "snow", "flower", "robot", "space", "ship", "horse", "child"]


def encode_one(data: Path, tmp: Path, n: int = 24) -> dict:
    import tiny_clip
    from core.features.build import build_features, encode_items
    from core.workspace import Item, Workspace
    items = []
    for line in (data / "movies.dat").read_text(encoding="latin-1").splitlines()[:n]:
        mid, title, genres = line.split("::")
        poster = data / "posters" / f"{mid}.jpg"
        items.append(Item(id=mid, title=title, categories=genres, image=str(poster) if poster.exists() else None))
    weights = tiny_clip.save_weights(tmp / "tiny.safetensors")
    with Workspace.create(tmp / "ws") as ws:
        with ws.transaction() as db:
            ws.upsert_items(items, db)
        t0 = time.perf_counter()
        build_features(ws, clip_model=tiny_clip.register(), clip_weights=weights, vocabulary=WORDS)
        first = time.perf_counter() - t0
        new = ws.add_new_item("A brand new film", text="It is new. Very new.", image=items[-1].image)
        t0 = time.perf_counter()
        encode_items(ws, [new])
        return {"items": n, "build_s": round(first, 2), "encode_one_item_s": round(time.perf_counter() - t0, 3)}


def clip_gives_up() -> dict:
    import open_clip  # noqa: F401 - its import is not what is timed
    from huggingface_hub import constants
    from core.features.keywords import DEFAULT_TAG, ClipUnavailable, KeywordExtractor

    def seconds() -> float:
        t0 = time.perf_counter()
        try:
            KeywordExtractor.load("ViT-B-32", pretrained=DEFAULT_TAG)
        except ClipUnavailable:
            return round(time.perf_counter() - t0, 3)
        raise SystemExit("CLIP weights were found: nothing to time (they are cached on this machine)")
    out = {"offline_s": seconds()}
    os.environ["HF_HUB_OFFLINE"] = "0"
    constants.HF_HUB_OFFLINE = False
    constants.ENDPOINT = "http://127.0.0.1:9"      # a closed port on this machine
    out["unreachable_hub_s"] = seconds()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT)
    args = ap.parse_args(argv)
    out = {"cpus": os.cpu_count(), "load_avg_start": os.getloadavg()}
    if (args.data / "movies.dat").is_file():
        with tempfile.TemporaryDirectory() as d:
            out["encode_items"] = encode_one(args.data, Path(d))
    else:
        print(f"no data at {args.data}: encode_items not timed", file=sys.stderr)
    out["clip_unavailable"] = clip_gives_up()
    out["load_avg_end"] = os.getloadavg()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
