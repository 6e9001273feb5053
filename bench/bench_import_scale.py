"""Import of a large synthetic catalog, in a fresh process each, side by side with a git ref.

    .venv/bin/python bench/bench_import_scale.py --interactions 10000000 [--items 1000000] [--ref HEAD~5]

Writes a TSV of (user, item, timestamp) rows (20 per user, items drawn Zipf-like, 2 % repeats),
imports it with the 5-core filter, and prints seconds per step and the child's peak RSS.
With --ref, the same import runs with that ref's code (a temporary worktree) first.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from core.importers import ImportOptions, import_catalog
from core.workspace import Workspace
t = time.perf_counter()
with Workspace.create(sys.argv[3]) as ws:
    rep = import_catalog(ws, "tsv", {"interactions": sys.argv[2]}, ImportOptions(kcore=5))
print(json.dumps({"seconds": time.perf_counter() - t, "steps": rep.steps, "kept": rep.interactions,
                  "users": rep.users, "items": rep.items,
                  "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20}))
"""


def write_tsv(path: Path, m: int, n_items: int) -> None:
    rng = np.random.default_rng(0)
    p = 1.0 / np.arange(1, n_items + 1) ** 0.7
    p /= p.sum()
    with open(path, "w") as f:
        f.write("user_id\titem_id\ttimestamp\n")
        for lo in range(0, m, 1_000_000):
            k = np.arange(lo, min(lo + 1_000_000, m))
            items = rng.choice(n_items, size=len(k), p=p)
            repeat = rng.random(len(k)) < 0.02
            items[repeat] = items[np.maximum(np.nonzero(repeat)[0] - 1, 0)]
            f.writelines(f"u{u}\ti{i}\t{1_600_000_000 + t}\n" for u, i, t in zip((k // 20).tolist(), items.tolist(), k.tolist()))


def run(code: Path, tsv: Path, tmp: Path) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, str(code), str(tsv), str(tmp / f"ws-{code.name}")],
                       capture_output=True, text=True)
    if r.returncode:
        return {"error": r.stderr.strip().splitlines()[-1][:300]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--interactions", type=int, default=10_000_000)
    ap.add_argument("--items", type=int, default=None, help="default: interactions / 10")
    ap.add_argument("--ref", default=None)
    a = ap.parse_args(argv)
    (REPO / "bench" / "results").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=REPO / "bench" / "results") as d:  # ignored by git
        tmp = Path(d)
        tsv = tmp / "inter.tsv"
        write_tsv(tsv, a.interactions, a.items or a.interactions // 10)
        codes = []
        if a.ref:
            wt = tmp / "ref"
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(wt), a.ref], check=True)
            codes.append(("ref " + a.ref, wt))
        codes.append(("now", REPO))
        try:
            for name, code in codes:
                out = run(code, tsv, tmp)
                print(f"{name:>12}: {json.dumps(out)}", flush=True)
        finally:
            if a.ref:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tmp / "ref")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
