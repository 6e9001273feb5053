"""Imports at scale: interactions held as compact columns, with de-duplication and the
k-core filter exactly those of core.splits on tuples, and memory bounded by the rows' count
of 24 bytes each rather than a list of tuples of strings."""
import os
import resource
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings, strategies as st

from core import splits
from core.importers.rows import Rows

REPO = Path(__file__).resolve().parents[1]

row = st.tuples(st.sampled_from([f"u{k}" for k in range(8)]), st.sampled_from([f"i{k}" for k in range(10)]),
                st.integers(-3, 3))


@settings(max_examples=300, deadline=None)
@given(st.lists(row, max_size=120), st.integers(0, 4))
def test_compact_rows_dedup_and_kcore_equal_the_tuple_versions(rows, k):
    r = Rows(rows)
    assert list(r) == rows and len(r) == len(rows)
    assert r.has_repeats() == (len(set((u, i) for u, i, _ in rows)) != len(rows))
    d = r.dedup()
    assert list(d) == splits.dedup(rows)
    kc = d.kcore(k)
    want = splits.kcore(splits.dedup(rows), k)
    assert list(kc) == want
    assert kc.is_kcore(k)
    assert kc.item_ids() == list(dict.fromkeys(i for _, i, _ in want))
    assert kc.n_users() == len({u for u, _, _ in want})


CHILD = r"""
import resource, sys
sys.path.insert(0, sys.argv[1])
from core.importers import ImportOptions, import_catalog
from core.workspace import Workspace
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ws = Workspace.create(sys.argv[3])
rep = import_catalog(ws, "tsv", {"interactions": sys.argv[2]}, ImportOptions(kcore=2))
print(rep.interactions, rep.users, rep.items, base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_a_large_import_stays_within_memory_of_its_rows(tmp_path):
    n = 1_500_000
    path = tmp_path / "inter.tsv"
    with open(path, "w") as f:
        f.write("user_id\titem_id\ttimestamp\n")
        for k in range(n):   # 150k users x 10, 30k items, a few repeats
            f.write(f"user{k // 10:07d}\titem{(k * 7919) % 30000:06d}\t{1_600_000_000 + k}\n")
    r = subprocess.run([sys.executable, "-c", CHILD, str(REPO), str(path), str(tmp_path / "ws")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    kept, users, items, base, peak = map(int, r.stdout.split())
    assert kept > 0.9 * n and users == 150_000 and items == 30_000
    grew_mb = (peak - base) / 1024
    # a list of 1.5M tuples of fresh strings alone is ~400 MB; the columns are 36 MB
    assert grew_mb < 350, f"import grew by {grew_mb:.0f} MB for {n:,} rows"
