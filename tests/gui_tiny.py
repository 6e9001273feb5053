"""A tiny real workspace and a tiny real trained model, for the GUI panel tests.

The workspace holds the first users of ml-1m-posters (real items, titles,
posters, histories) and feature files written by core.features.store.save with
seeded random vectors (no sentence encoder offline: the tests prove the GUI's
path through the real model, not the meaning of its features). The model is
trained by the real `msm4sr train` command line, 1 epoch of each stage.
Built once per test process and shared by the GUI test modules.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
USERS = 100
# small enough for 2 CPU cores: a second or two per stage
TINY_SETS = ["hidden=16", "layers=1", "heads=2", "inner=32", "max_len=20", "pool_dim=16",
             "experts=2", "pretrain_epochs=1", "finetune_epochs=1", "pretrain_batch=256",
             "finetune_batch=256", "eval_batch=256", "device=cpu", "threads=1"]

_cache: dict[str, object] = {}


def build_workspace(path: Path, ml1m: Path, users: int = USERS) -> Path:
    import torch
    from core.features import store
    from core.workspace import Item, Workspace

    rows, kept = [], []
    with open(ml1m / "interactions.tsv", encoding="utf-8") as f:
        next(f)
        for line in f:
            u, i, t = line.rstrip("\n").split("\t")
            if u not in kept:
                if len(kept) == users:
                    break
                kept.append(u)
            rows.append((u, i, int(t)))
    wanted = {i for _, i, _ in rows}
    items = []
    with open(ml1m / "movies.dat", encoding="latin-1") as f:
        for line in f:
            mid, title, genres = line.rstrip("\n").split("::")
            if mid in wanted:
                poster = ml1m / "posters" / f"{mid}.jpg"
                items.append(Item(id=mid, title=title, categories=genres,
                                  image=str(poster) if poster.exists() else None))
    with Workspace.create(path) as ws:
        with ws.transaction() as db:
            ws.upsert_items(items, db)
            ws.add_interactions(rows, db)
        ids = ws.item_ids()
    g = torch.Generator().manual_seed(0)
    for modality, v, meta in (("text", 3, {"model": "random-test-text"}),
                              ("image", 5, {"model": "random-test-text", "source": "random-test"})):
        fs = store.FeatureSet(ids=ids, vectors=torch.randn(len(ids), v, 32, generator=g),
                              mask=torch.ones(len(ids), v, dtype=torch.bool), meta=meta)
        store.save(path / "features", modality, fs)
    return path


def cli(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "core.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def events(stdout: str) -> list[dict]:
    out = []
    for line in stdout.splitlines():
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(ev, dict):
            out.append(ev)
    return out


def tiny_model(tmp_path_factory, ml1m: Path) -> tuple[Path, Path]:
    """(workspace, checkpoint folder) of a model trained once per process."""
    if "model" not in _cache:
        root = tmp_path_factory.mktemp("gui-tiny")
        ws = build_workspace(root / "ws", ml1m)
        sets = [a for s in TINY_SETS for a in ("--set", s)]
        r = cli(["train", str(ws), "--progress-json", "--run", "tiny", *sets])
        assert r.returncode == 0, r.stderr[-3000:]
        done = [e for e in events(r.stdout) if e.get("event") == "done"]
        assert done, r.stdout[-2000:] + r.stderr[-2000:]
        _cache["model"] = (ws, Path(done[-1]["checkpoint"]))
    return _cache["model"]


# Shared fixtures of the live-panel tests; a test module imports them by name.
import pytest  # noqa: E402


@pytest.fixture(scope="module")
def model(tmp_path_factory, ml1m):
    """(workspace, checkpoint) of the tiny trained model."""
    return tiny_model(tmp_path_factory, ml1m)


@pytest.fixture(scope="module")
def rec(model):
    """The tiny model loaded as a Recommender, as the app loads it."""
    from gui.model_calls import load_recommender
    ws, ckpt = model
    return load_recommender(ckpt, ws)
