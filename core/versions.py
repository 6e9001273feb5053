"""What `msm4sr --version` and the app's Help > About say: the package, Python, torch, the
device training would use, and the default feature models (a workspace's own are in `info`)."""
from __future__ import annotations

import platform
from importlib import metadata


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict:
    """Imports torch (a few seconds): call it off the GUI thread."""
    import torch
    from core.features.keywords import DEFAULT_MODEL, DEFAULT_TAG
    from core.features.text import DEFAULT_NAME
    from core.train import pick_device
    dev = pick_device("auto")
    device = torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type
    return {"msm4sr-studio": _version("msm4sr-studio"), "python": platform.python_version(),
            "torch": torch.__version__, "device": device,
            "sentence-transformers": _version("sentence-transformers"),
            "open_clip_torch": _version("open_clip_torch"), "pyside6": _version("PySide6_Essentials") if _version("PySide6") == "not installed" else _version("PySide6"),
            "text model": DEFAULT_NAME, "clip model": f"{DEFAULT_MODEL} ({DEFAULT_TAG})"}


def format_versions(v: dict) -> str:
    return "\n".join(f"{k}: {val}" for k, val in v.items())
