"""Kill a feature build with SIGKILL midway: the workspace stays consistent, and a rerun
finishes with exactly the features of an uninterrupted build. Real subprocesses, the
real MiniLM, real signals."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from core.features import store
from core.workspace import Item, Workspace
import procs

pytestmark = pytest.mark.realdata      # ../shared/datasets

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 225                   # seconds for one build on an unloaded machine; procs.limit scales it


def _catalog(path: Path, ml1m: Path, n: int = 160) -> Path:
    """n real movie titles and genres, each with a description so items carry several vectors."""
    ws = Workspace.create(path)
    items = []
    with open(ml1m / "movies.dat", encoding="latin-1") as f:
        for line in list(f)[:n]:
            mid, title, genres = line.rstrip("\n").split("::")
            items.append(Item(id=mid, title=title, categories=genres,
                              text=f"{title} is a film. Its genres are {genres.replace('|', ', ')}."))
    with ws.transaction() as db:
        ws.upsert_items(items, db)
    ws.close()
    return path


def _cmd(ws: Path) -> list[str]:
    return [sys.executable, "-m", "core.cli", "features", str(ws), "--keywords-from", "none",
            "--batch-size", "16", "--json"]


@pytest.mark.slow
def test_feature_build_survives_sigkill(ml1m, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    reference = _catalog(tmp_path / "reference", ml1m)
    procs.run(_cmd(reference), env=env, cwd=REPO, seconds=TIMEOUT)
    want = store.load(reference / "features", "text")

    ws = _catalog(tmp_path / "ws", ml1m)
    partial = ws / "features" / "partial"
    proc = subprocess.Popen(_cmd(ws), env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed, deadline = False, time.monotonic() + procs.limit(TIMEOUT)
    while proc.poll() is None and time.monotonic() < deadline:
        if partial.exists() and len(list(partial.glob("text-*.safetensors"))) >= 2:
            proc.send_signal(signal.SIGKILL)   # some batches done, the rest not
            proc.wait()
            killed = True
            break
        time.sleep(0.01)
    if proc.poll() is None:     # never hang: a build that neither writes batches nor ends
        proc.kill()
        proc.wait()
    assert killed, "the build finished (or stalled) before the kill could land"
    assert not (ws / "features" / "text.safetensors").exists()

    db = sqlite3.connect(ws / "catalog.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 160
    db.close()

    procs.run(_cmd(ws), env=env, cwd=REPO, seconds=TIMEOUT)
    got = store.load(ws / "features", "text")
    assert got.ids == want.ids
    assert torch.equal(got.mask, want.mask)
    # same model, same sentences; batching may differ, so allow float noise
    assert torch.allclose(got.vectors.float(), want.vectors.float(), atol=2e-3)
    assert not list(partial.glob("text-*"))   # merged and cleaned up
