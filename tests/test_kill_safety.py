"""Kill an import with SIGKILL midway: the workspace stays consistent and a rerun completes.

Real subprocesses, real signals, real SQLite. A slice of ml-1m-posters keeps it short.
"""
from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import procs
from seeds import seed_for

pytestmark = pytest.mark.realdata      # ../shared/datasets

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 75            # seconds for one import on an unloaded machine; procs.limit scales it
TRIES = 4               # per kill moment, each earlier than the last


def _import_cmd(ws: Path, ml1m: Path, ratings: Path) -> list[str]:
    return [sys.executable, "-m", "core.cli", "import", str(ws), "--format", "movielens",
            "--movies", str(ml1m / "movies.dat"), "--ratings", str(ratings),
            "--posters", str(ml1m / "posters"), "--json"]


def _snapshot(ws: Path):
    db = sqlite3.connect(ws / "catalog.sqlite")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        items = db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        rows = db.execute("SELECT user, item, ts FROM interactions ORDER BY user, ts, pos").fetchall()
        return items, rows
    finally:
        db.close()


def _kill_when(proc: subprocess.Popen, ready) -> bool:
    """SIGKILL the process once ready() is true; False if it finished first."""
    deadline = time.monotonic() + procs.limit(TIMEOUT)
    while proc.poll() is None:
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        if time.monotonic() > deadline:     # never hang on an import that neither ends nor gets there
            proc.kill()
            proc.wait()
            raise AssertionError(f"the import ran past {procs.limit(TIMEOUT):.0f} s without reaching the "
                                 f"kill point: {' '.join(map(str, proc.args))}")
        time.sleep(0.01)
    return False


@pytest.mark.slow
def test_import_survives_sigkill(ml1m, tmp_path):
    """Both kill moments must land: when an import ends first, the next try kills earlier."""
    seed = seed_for("test_import_survives_sigkill")
    rng = random.Random(seed)
    ratings = tmp_path / "slice.tsv"
    with open(ml1m / "interactions.tsv") as src, open(ratings, "w") as dst:
        for n, line in enumerate(src):
            if n > 120_000:
                break
            dst.write(line)
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    reference = tmp_path / "reference"
    t0 = time.monotonic()
    procs.run(_import_cmd(reference, ml1m, ratings), env=env, cwd=REPO, seconds=TIMEOUT)
    took = time.monotonic() - t0
    want = _snapshot(reference)
    assert want[1], "reference import stored nothing"

    for name in ("at a random moment", "while the transaction writes"):
        for attempt in range(TRIES):
            ws = tmp_path / f"{name.replace(' ', '-')}-{attempt}"      # a fresh workspace per kill
            wal = ws / "catalog.sqlite-wal"
            delay = rng.uniform(0.3, 0.9) * took / 2 ** attempt       # inside an import's run time
            wal_bytes = (64 * 1024) >> attempt
            start = time.monotonic()
            ready = {
                "at a random moment": lambda: time.monotonic() - start > delay,
                "while the transaction writes": lambda: wal.exists() and wal.stat().st_size > wal_bytes,
            }[name]
            proc = subprocess.Popen(_import_cmd(ws, ml1m, ratings), env=env, cwd=REPO,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if _kill_when(proc, ready):
                break
        else:
            pytest.fail(f"{name}: the import finished before the kill in {TRIES} tries "
                        f"(import takes {took:.1f} s; seed {seed})")
        if (ws / "catalog.sqlite").exists():
            items, rows = _snapshot(ws)
            # all or nothing: a killed transaction never leaves half an import
            assert (items, rows) in ((0, []), want), (name, seed)
        procs.run(_import_cmd(ws, ml1m, ratings), env=env, cwd=REPO, seconds=TIMEOUT)
        assert _snapshot(ws) == want, (name, seed)          # complete, and no duplicates
        print(f"{name}: killed on try {attempt + 1} (import takes {took:.1f} s)")
