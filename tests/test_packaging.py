"""The package as a user gets it: `python -m build` makes an sdist and a wheel (from that
sdist) that carry the demo assets, the vocabulary and the demo model; the wheel installed
apart from the checkout runs `msm4sr info` on the demo and renders a screenshot."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHIPPED = "core/shipped/"
# what a checkout holds that a build must never see (and would be slow to copy)
NOT_SOURCE = (".git", ".venv*", "build", "dist", "artifacts", "__pycache__", "*.egg-info",
              ".pytest_cache", ".hypothesis", "results")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _shipped_files() -> dict[str, Path]:
    """Every file the wheel must carry, by its name in the wheel."""
    out = {}
    for src in [*(REPO / "assets").rglob("*"), *(REPO / "trained_models" / "demo").rglob("*"),
                REPO / "trained_models" / "README.md"]:
        if src.is_file() and "__pycache__" not in src.parts:
            out[SHIPPED + src.relative_to(REPO).as_posix()] = src
    return out


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """sdist and wheel built by `python -m build` from a copy of the checkout (so builds
    never write into the shared tree), without build isolation: no network needed."""
    root = tmp_path_factory.mktemp("pkg")
    src = root / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    r = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(root / "dist"),
                        str(src)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    wheels = list((root / "dist").glob("*.whl"))
    sdists = list((root / "dist").glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list((root / "dist").iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0], "root": root}


def test_wheel_carries_the_shipped_data_byte_for_byte(dists):
    want = _shipped_files()
    assert len([n for n in want if "/images/" in n]) > 100          # the demo's clip art is there
    with zipfile.ZipFile(dists["wheel"]) as z:
        names = set(z.namelist())
        missing = sorted(set(want) - names)
        assert not missing, missing[:10]
        for name, src in want.items():
            assert _sha(z.read(name)) == _sha(src.read_bytes()), name
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = z.read(meta).decode()
        entry = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert {"core/paths.py", "core/cli.py", "gui/app.py"} <= names
    assert not any(n.startswith(("tests/", "assets/", "trained_models/", "bench/")) for n in names)
    assert "msm4sr = core.cli:main" in entry and "msm4sr-studio = gui.app:main" in entry
    assert "Requires-Python: >=3.11" in metadata
    assert "Requires-Dist: platformdirs" in metadata


def test_sdist_carries_the_repository_layout(dists):
    with tarfile.open(dists["sdist"]) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    for need in ("setup.py", "pyproject.toml", "MANIFEST.in", "assets/vocabulary.txt",
                 "assets/demo/items.tsv", "assets/demo/interactions.tsv",
                 "trained_models/demo/weights.safetensors", "trained_models/demo/manifest.json"):
        assert need in names, need


def test_pip_refuses_the_wheel_on_python_3_10(dists, tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-index",
                        "--python-version", "3.10", "--target", str(tmp_path / "t"), str(dists["wheel"])],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "requires a different Python" in r.stderr and "'>=3.11'" in r.stderr, r.stderr[-2000:]


def _apart_env(target: Path, home: Path) -> dict:
    """The installed copy first on the path; the checkout nowhere; user folders in `home`."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MSM4SR_DEMO_DIR")}
    env.update(PYTHONPATH=str(target), QT_QPA_PLATFORM="offscreen", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", XDG_DATA_HOME=str(home / "data"),
               XDG_CONFIG_HOME=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"))
    return env


@pytest.mark.slow
def test_wheel_installed_apart_runs_the_demo(dists, tmp_path):
    target, cwd = tmp_path / "site", tmp_path / "elsewhere"
    cwd.mkdir()
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                        "--target", str(target), str(dists["wheel"])],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    env = _apart_env(target, tmp_path)

    def run(args, timeout=600):
        r = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, f"{args}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        return r

    # the installed copy is the one imported, and it finds its own data
    where = json.loads(run([sys.executable, "-c",
        "import json, core, gui, core.paths as p, core.demo as d, core.features.keywords as k;"
        "print(json.dumps([core.__file__, gui.__file__, str(p.data_root()), str(d.demo_dir()),"
        " str(k.VOCABULARY), str(d.DEMO_MODEL)]))"]).stdout)
    core_file, gui_file, data_root, demo_dir, vocab, model = map(Path, where)
    for p in (core_file, gui_file, data_root, vocab, model):
        assert p.is_relative_to(target) and not p.is_relative_to(REPO), p
    assert data_root == target / "core" / "shipped" and vocab.is_file() and model.is_dir()
    assert demo_dir == tmp_path / "data" / "msm4sr-studio" / "demo"     # platformdirs, XDG here

    # the demo, built by the installed code from the installed assets
    run([sys.executable, "-c", "from core.demo import ensure_demo_workspace; ensure_demo_workspace()"])
    info = json.loads(run([str(target / "bin" / "msm4sr"), "info", str(demo_dir), "--json"]).stdout)
    n_items = sum(1 for _ in open(REPO / "assets" / "demo" / "items.tsv", encoding="utf-8")) - 1
    assert 0 < info["items"] <= n_items and info["interactions"] > 1000
    assert info["features"]["text"] and info["features"]["image"]
    assert (demo_dir / "source" / "items.tsv").read_bytes() == (data_root / "assets/demo/items.tsv").read_bytes()

    shot = tmp_path / "shot.png"
    r = run([str(target / "bin" / "msm4sr-studio"), "--screenshot", str(shot)])
    assert "Could not prepare the demo" not in r.stderr, r.stderr[-2000:]
    from PIL import Image
    with Image.open(shot) as im:
        rgb = im.convert("RGB")
        colours = rgb.getcolors(1 << 24)
    # an empty window has a few hundred colours; the catalog's clip art brings thousands
    assert rgb.size == (1600, 1000) and len(colours) > 5000, len(colours)
