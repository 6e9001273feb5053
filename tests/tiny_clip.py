"""A tiny open_clip architecture with random weights, for tests only.

No CLIP weights exist offline, so tests prove the code path (loading, zero-shot
keywords, storage), not the meaning of the keywords. ~3.4M parameters: milliseconds.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

NAME = "tiny-test-clip"
CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 2},
}
_registered: str | None = None


def register() -> str:
    """Register the tiny config with open_clip (once per process) and return its model name."""
    global _registered
    if _registered is None:
        import open_clip
        d = Path(tempfile.mkdtemp(prefix="tiny-clip-"))
        (d / f"{NAME}.json").write_text(json.dumps(CONFIG))
        open_clip.add_model_config(d)
        _registered = NAME
    return _registered


def save_weights(path, seed: int = 0) -> Path:
    """Write a random tiny model's state_dict as .safetensors (the --clip-weights path)."""
    import open_clip
    import torch
    from safetensors.torch import save_file
    torch.manual_seed(seed)
    model = open_clip.create_model(register(), pretrained=None)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    path = Path(path)
    save_file(state, str(path))
    return path
