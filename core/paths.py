"""Where the program's own files are: the shipped data and the user's folders.

Shipped data (the keyword vocabulary, the demo catalog, the demo model) lives in the
repository's top-level assets/ and trained_models/. A built wheel carries copies of them
inside the package, as core/shipped/assets and core/shipped/trained_models (setup.py
maps them there at build time), and they are found with importlib.resources. A checkout
(or an editable install of one) has no core/shipped, so the top-level folders are used.

The user's folders come from platformdirs, so they are the native ones on Linux
(XDG), macOS (~/Library/...) and Windows (%LOCALAPPDATA%).
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

APP = "msm4sr-studio"
SHIPPED = "shipped"               # the folder inside the package that a wheel carries
CHECKOUT = Path(__file__).resolve().parents[1]


def _packaged_root() -> Path | None:
    root = resources.files("core") / SHIPPED
    # a wheel unpacks to plain files; a zipped install would need extracting, which the
    # demo (copied folders, memory-mapped weights) does not support
    return Path(str(root)) if isinstance(root, Path) and root.is_dir() else None


def _checkout_root() -> Path | None:
    ok = (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "assets").is_dir()
    return CHECKOUT if ok else None


def data_root() -> Path:
    """The folder holding assets/ and trained_models/: the package's copy, else the checkout.

    When neither exists the package's path is returned, so that whatever reads from it
    fails naming the missing file."""
    return _packaged_root() or _checkout_root() or Path(str(resources.files("core") / SHIPPED))


def assets_dir() -> Path:
    return data_root() / "assets"


def vocabulary_file() -> Path:
    return assets_dir() / "vocabulary.txt"


def demo_assets_dir() -> Path:
    return assets_dir() / "demo"


def trained_models_dir() -> Path:
    return data_root() / "trained_models"


def demo_model_dir() -> Path:
    return trained_models_dir() / "demo"


def demo_dir() -> Path:
    """Where the demo workspace lives (not created here): $MSM4SR_DEMO_DIR, else the
    platform's user data folder (on Linux $XDG_DATA_HOME/msm4sr-studio/demo)."""
    env = os.environ.get("MSM4SR_DEMO_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs
    return platformdirs.user_data_path(APP, appauthor=False) / "demo"


def cache_dir() -> Path:
    """The platform's user cache folder for this program (on Linux $XDG_CACHE_HOME/msm4sr-studio);
    downloaded CLIP weights go here."""
    import platformdirs
    return platformdirs.user_cache_path(APP, appauthor=False)
