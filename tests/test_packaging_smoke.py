"""The smoke subset (`./dev smoke`, and what .ci/run runs on every other Python): every
module imports, the demo builds, a short training run, recommendations from it and from
the shipped model, and a screenshot. Short on purpose: a fresh interpreter's first check."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.smoke
REPO = Path(__file__).resolve().parents[1]
TINY = {"hidden": 32, "inner": 64, "max_len": 20, "experts": 2, "pool_dim": 16,
        "pretrain_batch": 64, "finetune_batch": 64, "eval_batch": 128, "threads": 1,
        "pretrain_epochs": 1, "finetune_epochs": 1}


def _env(**extra) -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO), QT_QPA_PLATFORM="offscreen", HF_HUB_OFFLINE="1",
                TRANSFORMERS_OFFLINE="1", **extra)


def test_every_module_imports_and_core_stays_without_qt():
    """In a fresh interpreter: all of core imports without Qt, then all of gui imports."""
    code = (
        "import importlib, pkgutil, sys, json, core, gui\n"
        "names = lambda pkg: [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.')]\n"
        "core_mods = names(core)\n"
        "[importlib.import_module(n) for n in core_mods]\n"
        "qt = sorted(m for m in sys.modules if m.startswith(('PySide6', 'shiboken6')))\n"
        "gui_mods = names(gui)\n"
        "[importlib.import_module(n) for n in gui_mods]\n"
        "print(json.dumps({'core': core_mods, 'gui': gui_mods, 'qt_from_core': qt}))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["qt_from_core"] == []
    assert {"core.config", "core.paths", "core.train", "core.cli"} <= set(got["core"])
    assert {"gui.app", "gui.training"} <= set(got["gui"])


def test_toml_config_loads_on_this_python(tmp_path):
    """tomllib from 3.11 on, tomli before: the same file gives the same config."""
    from core.config import load_config
    from core.errors import InputError
    path = tmp_path / "c.toml"
    path.write_text('hidden = 48\nheads = 2\nmodel = "sasrec"\n')
    cfg = load_config(toml_path=path)
    assert (cfg.hidden, cfg.heads, cfg.model) == (48, 2, "sasrec")
    path.write_text("hidden = = 3\n")
    with pytest.raises(InputError, match="cannot read config"):
        load_config(toml_path=path)


@pytest.fixture(scope="module")
def demo_ws(built_demo, tmp_path_factory):
    """A copy of the session's demo workspace (conftest), which training here adds a model to."""
    src, _ = built_demo
    path = tmp_path_factory.mktemp("smoke") / "demo"
    shutil.copytree(src, path)
    return path


def test_demo_builds_and_the_shipped_model_recommends(demo_ws):
    from core import demo
    from core.recommend import Recommender
    from core.workspace import Workspace
    assert demo.is_demo(demo_ws)
    with Workspace.open(demo_ws) as ws:
        seq = ws.load_sequence(demo.DEMO_SEQUENCE)
        top = Recommender.load(demo.DEMO_MODEL, ws).recommend(seq, k=10, exclude=seq)
        ids = set(ws.item_ids())
    assert len(top) == 10 and all(i in ids and i not in seq for i, _ in top)


def test_short_training_run_then_recommend(demo_ws):
    """`msm4sr train` on this Python (one epoch per stage, tiny model), then its model recommends."""
    from core import demo
    from core.recommend import Recommender
    from core.workspace import Workspace
    sets = [f"--set={k}={v}" for k, v in TINY.items()]
    r = subprocess.run([sys.executable, "-m", "core.cli", "train", str(demo_ws), "--run", "smoke", *sets],
                       cwd=REPO, env=_env(), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    model = demo_ws / "models" / "smoke"
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["model"] == "msm4sr"
    with Workspace.open(demo_ws) as ws:
        seq = ws.load_sequence(demo.DEMO_SEQUENCE)
        top = Recommender.load(model, ws).recommend(seq, k=5, exclude=seq)
        ids = set(ws.item_ids())
    scores = [s for _, s in top]
    assert len(top) == 5 and all(i in ids for i, _ in top) and scores == sorted(scores, reverse=True)


def test_screenshot_of_the_demo(demo_ws, tmp_path):
    shot = tmp_path / "shot.png"
    env = _env(MSM4SR_DEMO_DIR=str(demo_ws), XDG_CONFIG_HOME=str(tmp_path / "config"))
    r = subprocess.run([sys.executable, "-m", "gui.app", "--screenshot", str(shot)], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "Could not prepare the demo" not in r.stderr, r.stderr[-3000:]
    from PIL import Image
    with Image.open(shot) as im:
        rgb = im.convert("RGB")
    # an empty window has a few hundred colours; the catalog's clip art brings thousands
    assert rgb.size == (1600, 1000) and len(rgb.getcolors(1 << 24)) > 5000
