"""`msm4sr --version`: the package, torch, the device and the default feature models."""
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def test_version_names_package_torch_device_and_models():
    r = subprocess.run([sys.executable, "-m", "core.cli", "--version"], cwd=REPO, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    got = dict(line.split(": ", 1) for line in r.stdout.strip().splitlines())
    assert got["msm4sr-studio"] == metadata.version("msm4sr-studio")
    assert got["torch"] == torch.__version__
    assert got["device"] == ("cpu" if not torch.cuda.is_available() else torch.cuda.get_device_name(0))
    assert got["text model"] == "all-MiniLM-L6-v2" and got["clip model"].startswith("ViT-B-32")
    assert got["pyside6"] != "not installed"
