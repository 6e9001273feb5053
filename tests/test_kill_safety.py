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

pytestmark = pytest.mark.realdata      # ../shared/datasets

REPO = Path(__file__).resolve().parents[1]


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
    while proc.poll() is None:
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.01)
    return False


@pytest.mark.slow
def test_import_survives_sigkill(ml1m, tmp_path):
    ratings = tmp_path / "slice.tsv"
    with open(ml1m / "interactions.tsv") as src, open(ratings, "w") as dst:
        for n, line in enumerate(src):
            if n > 120_000:
                break
            dst.write(line)
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    reference = tmp_path / "reference"
    t0 = time.monotonic()
    subprocess.run(_import_cmd(reference, ml1m, ratings), check=True, env=env,
                   capture_output=True, cwd=REPO)
    took = time.monotonic() - t0
    want = _snapshot(reference)
    assert want[1], "reference import stored nothing"

    rng = random.Random()
    delay = rng.uniform(0.3, 0.9) * took          # somewhere inside an import's run time
    kills = 0
    for name in ("at a random moment", "while the transaction writes"):
        ws = tmp_path / name.replace(" ", "-")      # a fresh workspace per kill
        wal = ws / "catalog.sqlite-wal"
        start = time.monotonic()
        ready = {
            "at a random moment": lambda: time.monotonic() - start > delay,
            "while the transaction writes": lambda: wal.exists() and wal.stat().st_size > 64 * 1024,
        }[name]
        proc = subprocess.Popen(_import_cmd(ws, ml1m, ratings), env=env, cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not _kill_when(proc, ready):
            continue
        kills += 1
        if (ws / "catalog.sqlite").exists():
            items, rows = _snapshot(ws)
            # all or nothing: a killed transaction never leaves half an import
            assert (items, rows) in ((0, []), want), name
        subprocess.run(_import_cmd(ws, ml1m, ratings), check=True, env=env,
                       capture_output=True, cwd=REPO)
        assert _snapshot(ws) == want, name          # complete, and no duplicates
    print(f"kills survived: {kills} of 2 (import takes {took:.1f} s)")
    assert kills >= 1, f"both imports finished before a kill could land (import took {took:.1f} s)"
