"""Shared fixtures. Real data lives in ../shared/datasets and is never copied here."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
ML1M = REPO.parent / "shared" / "datasets" / "ml-1m-posters"
SCIENTIFIC = REPO.parent / "shared" / "datasets" / "amazon-scientific"


def under_ci() -> bool:
    """CI is set the way CI services set it: "true" or "1", any case."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def _need(path: Path) -> Path:
    """Real data: skip only when absent, and never skip under CI."""
    if not path.exists():
        if under_ci():
            pytest.fail(f"{path} is missing under CI; real-data tests must run there")
        pytest.skip(f"{path} not present")
    return path


DATA_FIXTURES = ("ml1m", "scientific")


@pytest.hookimpl(tryfirst=True)     # before -m selects on the markers
def pytest_collection_modifyitems(config, items):
    """Every test that reaches the real data carries `realdata`, also through other fixtures,
    so `-m "not realdata"` selects exactly the tests that run without ../shared/datasets."""
    for item in items:
        if any(f in getattr(item, "fixturenames", ()) for f in DATA_FIXTURES) \
                and item.get_closest_marker("realdata") is None:
            item.add_marker(pytest.mark.realdata)


@pytest.fixture(scope="session")
def ml1m() -> Path:
    """../shared/datasets/ml-1m-posters (read-only)."""
    return _need(ML1M)


@pytest.fixture(scope="session")
def scientific() -> Path:
    """../shared/datasets/amazon-scientific (read-only): sparse, text-only."""
    return _need(SCIENTIFIC)


@pytest.fixture
def workspace(tmp_path):
    """A fresh, empty workspace on the real SQLite."""
    from core.workspace import Workspace
    ws = Workspace.create(tmp_path / "ws")
    yield ws
    ws.close()


@pytest.fixture(scope="session", autouse=True)
def _no_user_demo(tmp_path_factory):
    """No test, nor a program a test starts, reaches the user's demo folder: $MSM4SR_DEMO_DIR
    points into the session's temporary folder unless a test sets its own."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MSM4SR_DEMO_DIR", str(tmp_path_factory.mktemp("no-user-demo") / "demo"))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def built_demo(tmp_path_factory):
    """The demo workspace built once per session from the shipped assets, in a temporary
    $MSM4SR_DEMO_DIR (never the user's data folder, and never a copy left by older code).
    Returns (demo path, the XDG_DATA_HOME that was set during the build). Tests that change
    it work on a copy."""
    from core import demo
    root = tmp_path_factory.mktemp("demo")
    mp = pytest.MonkeyPatch()
    mp.setenv("MSM4SR_DEMO_DIR", str(root / "build" / "demo"))
    mp.setenv("XDG_DATA_HOME", str(root / "xdg"))
    (root / "xdg").mkdir()
    try:
        path = demo.ensure_demo_workspace()
    finally:
        mp.undo()
    return path, root / "xdg"

