#!/usr/bin/env python3
"""Write assets/demo/interactions.tsv: simulated shoppers buying demo items.

    .venv/bin/python scripts/simulate_shoppers.py [--users 2500] [--seed 7]

The generative process is documented in core/demo_sim.py and docs/demo.md.
The output is invented (simulated), deterministic for a given seed and items.tsv.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.demo_sim import read_items, simulate, write_interactions  # noqa: E402

DEMO = REPO / "assets" / "demo"
USERS, SEED = 2500, 7


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=Path, default=DEMO / "items.tsv")
    ap.add_argument("--out", type=Path, default=DEMO / "interactions.tsv")
    ap.add_argument("--users", type=int, default=USERS)
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    items = read_items(args.items)
    rows = simulate(items, users=args.users, seed=args.seed)
    write_interactions(rows, args.out)
    lengths = list(Counter(u for u, _, _ in rows).values())
    pop = Counter(i for _, i, _ in rows)
    print(f"{len(rows)} interactions, {len(lengths)} users, {len(pop)}/{len(items)} items; "
          f"length min {min(lengths)} median {statistics.median(lengths)} max {max(lengths)}; "
          f"item counts min {min(pop.values())} max {max(pop.values())}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
