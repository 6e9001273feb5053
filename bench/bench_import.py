"""Benchmark: import ml-1m-posters (../shared/datasets) into a temporary workspace.

    .venv/bin/python bench/bench_import.py [--data DIR] [--repeat N]

Prints seconds per step (parse, process, write), total wall and CPU seconds,
rows/s, peak memory (ru_maxrss) and the ratio to the 15 s target.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.importers import ImportOptions, import_catalog  # noqa: E402
from core.workspace import Workspace  # noqa: E402

TARGET_S = 15.0
DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ml-1m-posters"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT)
    ap.add_argument("--repeat", type=int, default=1, help="fresh imports to run (best is kept)")
    args = ap.parse_args(argv)
    if not (args.data / "interactions.tsv").exists():
        print(f"no data at {args.data}", file=sys.stderr)
        return 1
    sources = {"movies": args.data / "movies.dat", "ratings": args.data / "interactions.tsv",
               "posters": args.data / "posters"}
    best = None
    for k in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            with Workspace.create(Path(tmp) / "ws") as ws:
                marks = {}   # CPU time when each stage first reports

                def progress(stage, done, total):
                    marks.setdefault(stage, time.process_time())
                t0, c0 = time.perf_counter(), time.process_time()
                report = import_catalog(ws, "movielens", sources, ImportOptions(), progress)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                end = c0 + cpu
                step_cpu = {"parse": marks["process"] - c0,
                            "process": marks["write"] - marks["process"],
                            "write": end - marks["write"]}
                t1 = time.perf_counter()
                again = import_catalog(ws, "movielens", sources, ImportOptions())
                reimport = time.perf_counter() - t1
                assert again.interactions == report.interactions == ws.counts()["interactions"]
        run = dict(wall=wall, cpu=cpu, steps=report.steps, step_cpu=step_cpu, reimport=reimport,
                   report=report)
        print(f"run {k + 1}: {wall:.2f} s wall, {cpu:.2f} s CPU")
        if best is None or wall < best["wall"]:
            best = run
    r = best["report"]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"data            {args.data}")
    print(f"result          {r.users:,} users, {r.items:,} items, {r.interactions:,} interactions, "
          f"{len(r.items_without_image)} items without image")
    for step, s in best["steps"].items():
        print(f"  {step:<13} {s:6.2f} s wall  {best['step_cpu'][step]:6.2f} s CPU")
    print(f"total           {best['wall']:.2f} s wall, {best['cpu']:.2f} s CPU")
    print(f"rows/s          {r.interactions / best['wall']:,.0f}")
    print(f"re-import       {best['reimport']:.2f} s (no changes)")
    print(f"peak memory     {peak_mb:,.0f} MB (ru_maxrss)")
    print(f"vs 15 s target  {best['wall'] / TARGET_S:.2f}x wall, {best['cpu'] / TARGET_S:.2f}x CPU")
    print(f"load average    {' '.join(f'{x:.1f}' for x in os.getloadavg())} "
          f"on {os.cpu_count()} CPUs (wall time suffers when the CPUs are shared)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
