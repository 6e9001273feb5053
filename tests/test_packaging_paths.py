"""core.paths: the shipped data found in a checkout, the native user folders from
platformdirs, the MSM4SR_DEMO_DIR override, and the Python the package claims."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import platformdirs
import pytest

from core import demo, paths
from core.features import keywords

REPO = Path(__file__).resolve().parents[1]


def test_a_checkout_uses_its_top_level_folders():
    """No core/shipped in a checkout (an editable install): assets/ and trained_models/ are read
    where they are, and the modules that need them agree."""
    assert not (REPO / "core" / paths.SHIPPED).exists()
    assert paths.data_root() == REPO
    assert keywords.VOCABULARY == paths.vocabulary_file() == REPO / "assets" / "vocabulary.txt"
    assert demo.DEMO_ASSETS == REPO / "assets" / "demo" and (demo.DEMO_ASSETS / "items.tsv").is_file()
    assert demo.DEMO_MODEL == REPO / "trained_models" / "demo"
    assert (demo.DEMO_MODEL / "weights.safetensors").is_file()
    words = keywords.base_vocabulary()
    assert len(words) > 1000 and all(w == w.strip().lower() and w for w in words)


def test_demo_dir_override_wins_and_expands_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MSM4SR_DEMO_DIR", "~/my demo")
    assert paths.demo_dir() == demo.demo_dir() == tmp_path / "my demo"


def test_demo_dir_is_the_platforms_user_data_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("MSM4SR_DEMO_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert demo.demo_dir() == platformdirs.user_data_path("msm4sr-studio", appauthor=False) / "demo"
    if sys.platform.startswith("linux"):
        assert demo.demo_dir() == tmp_path / "data" / "msm4sr-studio" / "demo"


def test_cache_dir_is_the_platforms_user_cache_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert paths.cache_dir() == platformdirs.user_cache_path("msm4sr-studio", appauthor=False)
    if sys.platform.startswith("linux"):
        assert paths.cache_dir() == tmp_path / "cache" / "msm4sr-studio"


def _pyenv_python(version: str) -> Path | None:
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    found = sorted(Path(root, "versions").glob(f"{version}.*/bin/python")) if root else []
    return found[-1] if found else None


def test_python_3_10_is_refused_plainly():
    """requires-python says 3.11; put on the path by hand, `import core` says why it stops."""
    py = _pyenv_python("3.10")
    if py is None:
        pytest.skip("no Python 3.10 here")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([str(py), "-c", "import core"], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1
    assert "MSM4SR Studio needs Python 3.11 or newer; this is Python 3.10" in r.stderr
