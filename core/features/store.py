"""Feature files: `features/<modality>.safetensors` in a workspace.

Each file holds
  vectors  float16 [items, V, dim]   several vectors per item (sentences or keywords)
  mask     uint8   [items, V]        1 where a vector is real; an all-zero row = modality missing
and string metadata: `ids` (JSON list, row order), `modality`, `model` (text encoder),
and for images the keyword source (`source`, `clip_model`, `clip_pretrained` or
`clip_weights_sha256`, `vocab_sha256`, `keywords`). Only safetensors: never pickle.
"""
from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

MODALITIES = ("text", "image")


@dataclass
class FeatureSet:
    ids: list[str]
    vectors: "torch.Tensor"  # noqa: F821  float16 [N, V, D]
    mask: "torch.Tensor"     # noqa: F821  bool [N, V]
    meta: dict = field(default_factory=dict)

    def index(self) -> dict[str, int]:
        return {i: k for k, i in enumerate(self.ids)}

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[-1])


def path_for(features_dir: Path, modality: str) -> Path:
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}")
    return Path(features_dir) / f"{modality}.safetensors"


def save(features_dir: Path, modality: str, fs: FeatureSet) -> Path:
    """Atomic write: a temporary file, then rename."""
    import torch
    from safetensors.torch import save_file
    path = path_for(features_dir, modality)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fs.meta.items()}
    meta["ids"] = json.dumps(fs.ids)
    meta["modality"] = modality
    tmp = path.with_suffix(".tmp")
    save_file({"vectors": fs.vectors.to(torch.float16).contiguous(),
               "mask": fs.mask.to(torch.uint8).contiguous()}, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path


def load(features_dir: Path, modality: str) -> FeatureSet | None:
    """The stored features of one modality, or None when not built."""
    from safetensors.torch import load_file
    path = path_for(features_dir, modality)
    if not path.exists():
        return None
    meta = read_meta(path)
    tensors = load_file(str(path))
    ids = json.loads(meta.pop("ids"))
    return FeatureSet(ids=ids, vectors=tensors["vectors"], mask=tensors["mask"].bool(), meta=meta)


def read_meta(path: Path) -> dict:
    """The string metadata of a safetensors file, read without torch (cheap)."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError(f"{path}: truncated safetensors file")
        (n,) = struct.unpack("<Q", head)
        if n > 100_000_000:
            raise ValueError(f"{path}: implausible safetensors header size {n}")
        header = json.loads(f.read(n))
    return dict(header.get("__metadata__") or {})
