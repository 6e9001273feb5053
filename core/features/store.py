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
    maps: list = field(default_factory=list, repr=False)   # the file maps the tensors view

    def release_pages(self) -> None:
        """Tell the kernel this process no longer needs the file pages it has read through
        the maps (madvise MADV_DONTNEED): they stay in the page cache and are read again on
        the next touch. A pass over a million items' features otherwise keeps the whole
        file (4.5 GB) in the process's resident set. The maps are copy-on-write and never
        written here, so nothing is lost. A no-op where the platform has no madvise."""
        import mmap
        for mm in self.maps:
            if hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
                mm.madvise(mmap.MADV_DONTNEED)

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
    """The stored features of one modality, or None when not built.

    The vectors are memory-mapped (copy-on-write), not read: a million items of 10 x 384
    float16 is 7.7 GB, and a step touches only the rows it gathers."""
    path = path_for(features_dir, modality)
    if not path.exists():
        return None
    header, start = _header(path)
    meta = dict(header.pop("__metadata__", None) or {})
    ids = json.loads(meta.pop("ids"))
    size = path.stat().st_size
    maps: list = []
    tensors = {name: _mapped(path, header, name, start, size, maps) for name in ("vectors", "mask")}
    if tensors["vectors"].shape[:2] != tensors["mask"].shape or len(ids) != tensors["mask"].shape[0]:
        raise ValueError(f"{path}: ids, vectors and mask disagree in shape")
    return FeatureSet(ids=ids, vectors=tensors["vectors"], mask=tensors["mask"].bool(), meta=meta, maps=maps)


_DTYPES = {"F16": ("float16", 2), "F32": ("float32", 4), "U8": ("uint8", 1), "BOOL": ("bool", 1)}


def _mapped(path: Path, header: dict, name: str, start: int, size: int, maps: list):
    """Tensor `name` of a safetensors file as a copy-on-write memory map (appended to `maps`),
    checked against the file's size first (touching a page past the end would kill the process)."""
    import mmap

    import torch
    info = header.get(name)
    if not isinstance(info, dict) or info.get("dtype") not in _DTYPES:
        raise ValueError(f"{path}: no readable {name!r} tensor")
    dtype, width = _DTYPES[info["dtype"]]
    shape = [int(n) for n in info.get("shape", [])]
    lo, hi = (int(n) for n in info.get("data_offsets", (0, -1)))
    count = 1
    for n in shape:
        count *= n
    if any(n < 0 for n in shape) or hi - lo != count * width or lo < 0 or start + hi > size:
        raise ValueError(f"{path}: {name!r} does not fit the file (truncated or damaged)")
    offset = start + lo
    if offset % width:  # not aligned for a view: read it instead
        with open(path, "rb") as f:
            f.seek(offset)
            data = bytearray(f.read(hi - lo))
        return torch.frombuffer(data, dtype=getattr(torch, dtype)).reshape(shape) if count else \
            torch.zeros(shape, dtype=getattr(torch, dtype))
    if not count:
        return torch.zeros(shape, dtype=getattr(torch, dtype))
    if not maps:
        with open(path, "rb") as f:   # copy-on-write: torch may write, the file never changes
            maps.append(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY))
    return torch.frombuffer(maps[0], dtype=getattr(torch, dtype), count=count, offset=offset).reshape(shape)


def _header(path: Path) -> tuple[dict, int]:
    """(the JSON header of a safetensors file, where its data starts)."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError(f"{path}: truncated safetensors file")
        (n,) = struct.unpack("<Q", head)
        if n > 100_000_000:
            raise ValueError(f"{path}: implausible safetensors header size {n}")
        try:
            header = json.loads(f.read(n))
        except ValueError:
            raise ValueError(f"{path}: unreadable safetensors header") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: unreadable safetensors header")
    return header, 8 + n


def read_meta(path: Path) -> dict:
    """The string metadata of a safetensors file, read without torch (cheap)."""
    return dict(_header(path)[0].get("__metadata__") or {})
