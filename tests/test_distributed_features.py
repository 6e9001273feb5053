"""Feature build sharded over two real CPU processes (gloo) under torchrun, against one process.

`python -m torch.distributed.run --standalone --nproc_per_node 2 -m core.cli -- features WS`:
each rank encodes every other text batch into features/partial/, then rank 0 merges. Both
processes cut the same batches (same batch size, same order), so each encode call sees the
same sentences as in one process; the reference runs as a subprocess with the same thread
count, so the vectors must match to float16 noise at most.
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import procs
from core.features import store
from test_kill_features import _catalog

pytestmark = pytest.mark.realdata      # ../shared/datasets

REPO = Path(__file__).resolve().parents[1]
ITEMS = 40
ARGS = ["--keywords-from", "none", "--batch-size", "6", "--json"]   # 7 batches: uneven shares
ENV = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1",
           PYTHONPATH=str(REPO))


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return procs.run(cmd, cwd=REPO, env=ENV, seconds=180)


def _single(ws: Path) -> dict:
    return json.loads(_run([sys.executable, "-m", "core.cli", "features", str(ws), *ARGS]).stdout)


def _torchrun(ws: Path) -> tuple[dict, dict[int, int]]:
    """(rank 0's JSON report, rank -> text items it encoded, from each rank's log line)."""
    r = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
              "-m", "core.cli", "--", "features", str(ws), *ARGS])
    encoded = {int(rank): int(n) for rank, n in
               re.findall(r"rank (\d+) of 2 encoded (\d+) text items", r.stderr)}
    assert sorted(encoded) == [0, 1], r.stderr[-4000:]
    return json.loads(r.stdout), encoded   # only rank 0 prints: stdout is one JSON object


def _item_ids(ws: Path) -> list[str]:
    db = sqlite3.connect(ws / "catalog.sqlite")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return [row[0] for row in db.execute("SELECT id FROM items")]
    finally:
        db.close()


@pytest.mark.slow
def test_two_processes_match_one_process(ml1m, tmp_path):
    reference = _catalog(tmp_path / "reference", ml1m, n=ITEMS)
    _single(reference)
    want = store.load(reference / "features", "text")

    ws = _catalog(tmp_path / "ws", ml1m, n=ITEMS)
    report, encoded = _torchrun(ws)
    # each rank encoded a real, non-empty part; together every item exactly once
    assert all(0 < n < ITEMS for n in encoded.values()), encoded
    assert sum(encoded.values()) == ITEMS == report["text_computed"] == report["text_items"]

    got = store.load(ws / "features", "text")
    ids = _item_ids(ws)
    assert len(ids) == ITEMS and sorted(got.ids) == sorted(ids) and len(set(got.ids)) == ITEMS
    assert got.ids == want.ids
    assert torch.equal(got.mask, want.mask)
    assert torch.allclose(got.vectors.float(), want.vectors.float(), atol=1e-5)
    assert not list((ws / "features" / "partial").glob("text-*"))   # merged and cleaned up

    # a rerun reuses every row: nothing encoded, nothing duplicated, same vectors
    report, encoded = _torchrun(ws)
    assert encoded == {0: 0, 1: 0} and report["text_computed"] == 0
    again = store.load(ws / "features", "text")
    assert again.ids == got.ids and len(_item_ids(ws)) == ITEMS
    assert torch.equal(again.vectors, got.vectors)
