"""Reading a checkpoint's manifest.json: a crafted or broken file is refused with a
CheckpointError that says why, before anything else (torch, a model) is touched.

Never imports torch: `msm4sr info` and the app's models dialog list manifests with it.
"""
from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

from core.errors import CheckpointError

FORMAT = "msm4sr-studio/1"
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 64 << 20   # the item ids of a catalog of millions fit in a few tens of MB
MAX_DEPTH = 16                  # a real manifest nests 3 levels (manifest > features > identity)
MAX_TENSORS = 4096              # a model has a few dozen; 64 layers of ours have about 900
MAX_DIM = 16384                 # feature widths: Sentence-BERT 384..1024, CLIP 512..1024
MODALITIES = ("text", "image")
# bytes per element of the dtypes a manifest may name (torch's names)
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8,
               "int64": 8, "int32": 4, "int16": 2, "int8": 1, "uint8": 1, "bool": 1}


def read_json(path, max_bytes: int = MAX_MANIFEST_BYTES, max_depth: int = MAX_DEPTH) -> dict:
    """A JSON object from a small regular file; anything else is a CheckpointError."""
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror or e})") from None
    if not stat.S_ISREG(st.st_mode):     # a FIFO would block, /dev/zero never ends
        raise CheckpointError(f"{path}: not a regular file")
    if st.st_size > max_bytes:
        raise CheckpointError(f"{path}: implausibly large ({st.st_size:,} bytes; at most "
                              f"{max_bytes:,})")
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise CheckpointError(f"{path}: implausibly large (more than {max_bytes:,} bytes)")
        obj = json.loads(data.decode("utf-8"))
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{path}: unreadable manifest (not UTF-8: {e.reason} at byte "
                              f"{e.start})") from None
    except RecursionError:
        raise CheckpointError(f"{path}: unreadable manifest (nested more than {max_depth} "
                              f"levels deep)") from None
    except ValueError as e:
        raise CheckpointError(f"{path}: unreadable manifest ({e})") from None
    if json_depth(obj, max_depth) > max_depth:
        raise CheckpointError(f"{path}: unreadable manifest (nested more than {max_depth} "
                              f"levels deep)")
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: unreadable manifest (a JSON {type(obj).__name__}, "
                              f"not an object)")
    return obj


def json_depth(obj, stop: int) -> int:
    """Nesting depth of parsed JSON (a scalar is 0), without recursion; stops counting past `stop`."""
    deepest, todo = 0, [(obj, 1)]
    while todo:
        o, d = todo.pop()
        vals = o.values() if isinstance(o, dict) else o if isinstance(o, list) else None
        if vals is None:
            continue
        deepest = max(deepest, d)
        if deepest > stop:
            break
        todo.extend((v, d + 1) for v in vals if isinstance(v, (dict, list)))
    return deepest


def _int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def read_manifest(path) -> tuple[Path, dict]:
    """A model folder or its manifest.json -> (folder, manifest), every field checked."""
    path = Path(path)
    folder = path.parent if path.name == MANIFEST else path
    mpath = folder / MANIFEST
    if not os.path.lexists(mpath):
        raise CheckpointError(f"{folder}: not a model folder (no {MANIFEST})")
    manifest = read_json(mpath)
    check_manifest(manifest, mpath)
    return folder, manifest


def check_manifest(manifest: dict, mpath) -> None:
    if manifest.get("format") != FORMAT:
        got = manifest.get("format")
        raise CheckpointError(f"{mpath}: not an MSM4SR Studio manifest (format "
                              f"{str(got)[:40]!r}, expected {FORMAT!r})")
    for key, kind in (("model", str), ("stage", str), ("config", dict), ("item_ids", list),
                      ("tensors", dict), ("dims", dict), ("weights_sha256", str)):
        if not isinstance(manifest.get(key), kind):
            raise CheckpointError(f"{mpath}: manifest field {key!r} missing or not a {kind.__name__}")
    if not all(isinstance(i, str) for i in manifest["item_ids"]):
        raise CheckpointError(f"{mpath}: item_ids must be strings")
    tensors = manifest["tensors"]
    if len(tensors) > MAX_TENSORS:
        raise CheckpointError(f"{mpath}: {len(tensors):,} tensors; a model has at most {MAX_TENSORS}")
    if not all(isinstance(v, list) and len(v) <= 8 and all(_int(n) and n >= 0 for n in v)
               for v in tensors.values()):
        raise CheckpointError(f"{mpath}: tensors must map names to shapes (lists of sizes)")
    if not all(_int(v) and 0 < v <= MAX_DIM for v in manifest["dims"].values()):
        raise CheckpointError(f"{mpath}: dims must be feature widths (integers 1..{MAX_DIM})")
    dtypes = manifest.get("dtypes")
    if dtypes is not None:   # recorded since the second round of hostile-input fixes
        if not isinstance(dtypes, dict) or set(dtypes) != set(tensors):
            raise CheckpointError(f"{mpath}: dtypes must name the dtype of every tensor in tensors")
        bad = sorted(k for k, v in dtypes.items() if v not in DTYPE_BYTES)[:3]
        if bad:
            raise CheckpointError(f"{mpath}: unknown dtype for tensors {bad} "
                                  f"(known: {', '.join(DTYPE_BYTES)})")
    size = manifest.get("weights_bytes")
    if size is not None and not (_int(size) and size > 8):
        raise CheckpointError(f"{mpath}: weights_bytes must be the weights file's size in bytes")
    mods = manifest.get("modalities")
    if mods is not None and not (isinstance(mods, list) and all(m in MODALITIES for m in mods)
                                 and len(set(mods)) == len(mods)):
        raise CheckpointError(f"{mpath}: modalities must be a list of distinct names from "
                              f"{list(MODALITIES)}, got {json.dumps(mods)[:60]}")
    check_features(manifest, mpath)


def check_features(manifest: dict, where) -> dict:
    """The manifest's feature identities: {modality: {key: value} or null}."""
    feats = manifest.get("features", {})
    if not isinstance(feats, dict) or not all(v is None or isinstance(v, dict) for v in feats.values()):
        raise CheckpointError(f"{where}: manifest field 'features' must map each modality to the "
                              f"identity of its feature extractor, got {json.dumps(feats)[:60]}")
    return feats


def safe_metrics(metrics) -> dict:
    """The finite numbers of a manifest's flat metrics dict (for listings); anything else is left out."""
    if not isinstance(metrics, dict):
        return {}
    return {str(k)[:60]: v for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
