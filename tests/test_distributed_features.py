"""Feature build sharded over two real CPU processes (gloo) under torchrun, against one process.

`python -m torch.distributed.run --standalone --nproc_per_node 2 -m core.cli -- features WS`:
each rank encodes every other text batch into features/partial/, then rank 0 merges. Both
processes cut the same batches (same batch size, same order), so each encode call sees the
same sentences as in one process; the reference runs as a subprocess with the same thread
count, so the vectors must match to float16 noise at most.

With CLIP keywords (the tiny random open_clip model of tests/tiny_clip.py, on real posters),
each rank also scores every other image batch; its keywords travel in its partial files and
rank 0 alone writes them to the database. A launcher registers the tiny model in each process
and makes every database write from a rank other than 0 fail.
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
import tiny_clip
from core.features import store
from core.workspace import Workspace
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


def _torchrun(ws: Path, program: list[str] | None = None, args: list[str] = ARGS
              ) -> tuple[dict, dict[int, int]]:
    """(rank 0's JSON report, rank -> text items it encoded, from each rank's log line)."""
    report, shares = _torchrun_shares(ws, program, args)
    return report, {rank: text for rank, (text, _) in shares.items()}


def _torchrun_shares(ws: Path, program: list[str] | None = None, args: list[str] = ARGS
                     ) -> tuple[dict, dict[int, tuple[int, int]]]:
    """(rank 0's JSON report, rank -> (text items encoded, image items scored))."""
    program = program or ["-m", "core.cli", "--"]
    r = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
              *program, "features", str(ws), *args])
    shares = {int(rank): (int(t), int(i)) for rank, t, i in re.findall(
        r"rank (\d+) of 2 encoded (\d+) text items and scored (\d+) image items", r.stderr)}
    assert sorted(shares) == [0, 1], r.stderr[-4000:]
    return json.loads(r.stdout), shares   # only rank 0 prints: stdout is one JSON object


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


LAUNCHER = """
import os, sqlite3, sys
sys.path.insert(0, {tests!r})
import tiny_clip
tiny_clip.register()
from core.workspace import Workspace
if int(os.environ.get("RANK", "0")) != 0:
    WRITES = {{sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE,
              sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_CREATE_TABLE, sqlite3.SQLITE_DROP_TABLE}}
    opened = Workspace.open.__func__

    def read_only(cls, *a, **k):
        ws = opened(cls, *a, **k)
        ws.db.set_authorizer(lambda action, *_: sqlite3.SQLITE_DENY if action in WRITES
                             else sqlite3.SQLITE_OK)
        return ws
    Workspace.open = classmethod(read_only)
from core.cli import main
sys.exit(main(sys.argv[1:]))
"""
BROKEN, GONE = 8, 30      # item rows: a junk poster in batch 1 (rank 1's), a missing one


def _poster_catalog(path: Path, ml1m: Path, tmp: Path) -> Path:
    _catalog(path, ml1m, n=ITEMS)
    junk = tmp / "junk.jpg"
    junk.write_bytes(b"not a jpeg at all")
    with Workspace.open(path) as ws:
        items = ws.items()
        for k, it in enumerate(items):
            it.image = str(ml1m / "posters" / f"{it.id}.jpg")
        items[BROKEN].image, items[GONE].image = str(junk), str(tmp / "gone.jpg")
        with ws.transaction() as db:
            ws.upsert_items(items, db)
    return path


def _keywords(ws: Path) -> list[tuple]:
    db = sqlite3.connect(ws / "catalog.sqlite")
    try:
        return db.execute("SELECT item, source, rank, word, score FROM keywords "
                          "ORDER BY item, source, rank").fetchall()
    finally:
        db.close()


@pytest.mark.slow
def test_two_processes_share_the_clip_keywords(ml1m, tmp_path):
    launcher = tmp_path / "launch.py"
    launcher.write_text(LAUNCHER.format(tests=str(REPO / "tests")))
    weights = tiny_clip.save_weights(tmp_path / "tiny.safetensors")
    args = ["--clip-model", tiny_clip.NAME, "--clip-weights", str(weights),
            "--batch-size", "6", "--json", "--report"]

    reference = _poster_catalog(tmp_path / "reference", ml1m, tmp_path)
    want = json.loads(_run([sys.executable, str(launcher), "features", str(reference),
                            *args]).stdout)
    ws = _poster_catalog(tmp_path / "ws", ml1m, tmp_path)
    got, shares = _torchrun_shares(ws, [str(launcher)], args)

    # each rank scored a real part of the images; together every usable one exactly once
    scored = {rank: images for rank, (_, images) in shares.items()}
    usable = ITEMS - 2
    assert all(0 < n < usable for n in scored.values()), shares
    assert sum(scored.values()) == usable == got["image_computed"] == want["image_computed"]
    assert got["image_items"] == want["image_items"] == usable

    ids = sorted(_item_ids(ws))
    broken, gone = ids[BROKEN], ids[GONE]
    assert got["images_missing"] == want["images_missing"] == []
    assert [i for i, _ in got["images_failed"]] == [broken, gone]
    assert got["images_failed"] == want["images_failed"]   # the same files, the same reasons
    assert [p["item"] for p in got["problems"]] == [broken, gone]   # reported once, by rank 0

    kw, ref_kw = _keywords(ws), _keywords(reference)
    assert len(kw) == usable * 15 and {r[0] for r in kw} == set(ids) - {broken, gone}
    assert [r[:4] for r in kw] == [r[:4] for r in ref_kw]      # same words, same order
    assert max(abs(a[4] - b[4]) for a, b in zip(kw, ref_kw)) < 1e-6

    image = store.load(ws / "features", "image")
    ref_image = store.load(reference / "features", "image")
    assert image.ids == ref_image.ids and torch.equal(image.mask, ref_image.mask)
    assert torch.allclose(image.vectors.float(), ref_image.vectors.float(), atol=1e-3)
    assert not list((ws / "features" / "partial").glob("*"))   # merged and cleaned up

    # one process after the two reuses every merged row and keeps the keywords rank 1 scored
    again = json.loads(_run([sys.executable, str(launcher), "features", str(ws), *args]).stdout)
    assert again["image_computed"] == 0 and again["text_computed"] == 0
    assert _keywords(ws) == kw
