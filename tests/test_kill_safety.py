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
    subprocess.run(_import_cmd(reference, ml1m, ratings), check=True, env=env,
                   capture_output=True, cwd=REPO)
    want = _snapshot(reference)
    assert want[1], "reference import stored nothing"

    ws = tmp_path / "ws"
    wal = ws / "catalog.sqlite-wal"
    rng = random.Random(int(time.time()))
    start = time.monotonic()
    delay = rng.uniform(0.5, 3.0)
    triggers = {
        "at a random moment": lambda: time.monotonic() - start > delay,
        "while the transaction writes": lambda: wal.exists() and wal.stat().st_size > 256 * 1024,
    }
    kills = 0
    for name, ready in triggers.items():
        start = time.monotonic()
        proc = subprocess.Popen(_import_cmd(ws, ml1m, ratings), env=env, cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if _kill_when(proc, ready):
            kills += 1
            if (ws / "catalog.sqlite").exists():
                items, rows = _snapshot(ws)
                # all or nothing: a killed transaction never leaves half an import
                assert (items, rows) in ((0, []), want), name
    assert kills >= 1, "the import finished before any kill could land"

    subprocess.run(_import_cmd(ws, ml1m, ratings), check=True, env=env,
                   capture_output=True, cwd=REPO)
    assert _snapshot(ws) == want  # complete, and no duplicates
