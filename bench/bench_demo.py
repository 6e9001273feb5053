"""The built-in demo: the first build of its workspace, then the call that finds it up to date.

    .venv/bin/python bench/bench_demo.py [--keep DIR]

Builds in a temporary $MSM4SR_DEMO_DIR (never the user's data folder) and prints the
seconds of each step the build records, the second call's seconds and their ratio.
Targets: the second call under 2 s and under a third of the first build (the tests
check instead that it builds nothing and touches no file).
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
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="build here (kept) instead of a temporary folder")
    args = ap.parse_args(argv)
    from core import demo
    from core.workspace import Workspace
    with tempfile.TemporaryDirectory() as tmp:
        target = (args.keep or Path(tmp)) / "demo"
        os.environ["MSM4SR_DEMO_DIR"] = str(target)
        t0 = time.perf_counter()
        path = demo.ensure_demo_workspace()
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        demo.ensure_demo_workspace()
        second = time.perf_counter() - t0
        with Workspace.open(path) as ws:
            steps = ws.get_meta("demo")["seconds"]
    out = {"first_build_s": round(first, 2), "build_steps_s": steps, "second_call_s": round(second, 3),
           "second_over_first": round(second / first, 4), "cpus": os.cpu_count(),
           "load_avg": os.getloadavg()}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
