"""Checkpoints: safetensors weights + a JSON manifest. Never pickle, never torch.load.

A model folder holds `weights.safetensors` and `manifest.json`. A resumable
training state (runs/<run>/<stage>/last/) adds `optimizer.safetensors` (Adam's
tensors, flattened) and `state.json` (epoch, step counts, early-stopping state).
Every file is written to a temporary name and renamed, weights before the
manifest, and the manifest records the weights' SHA-256, size, and every
tensor's shape and dtype: a torn, edited or crafted pair is refused on load,
and before any model is allocated (`load_model`).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import stat
from pathlib import Path

from core.errors import CheckpointError
from core.manifest import DTYPE_BYTES, FORMAT, MANIFEST, check_features, read_manifest  # noqa: F401

WEIGHTS, OPTIMIZER, STATE = "weights.safetensors", "optimizer.safetensors", "state.json"
# The most parameter bytes a manifest may describe: a million items at width 512 is 2 GB.
MAX_MODEL_BYTES = 4 << 30
MAX_HEADER_BYTES = 8 << 20      # a safetensors header: about 150 bytes a tensor
# safetensors' dtype names -> torch's (as the manifest records them)
_ST_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64",
              "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
              "BOOL": "bool"}


def _atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _save_bytes(path: Path, tensors: dict) -> bytes:
    from safetensors.torch import save
    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()})
    _atomic_bytes(path, data)
    return data


def save_tensors(path: Path, tensors: dict) -> str:
    return hashlib.sha256(_save_bytes(path, tensors)).hexdigest()


def _write_json(path: Path, obj: dict) -> None:
    _atomic_bytes(path, json.dumps(obj, indent=1).encode())


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def dtype_name(t) -> str:
    return str(t.dtype).removeprefix("torch.")


# ---- model folders ----------------------------------------------------------
def save_model(folder, model, manifest: dict) -> Path:
    """Write weights then manifest (with tensor names, shapes, dtypes, the weights' hash and size)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    data = _save_bytes(folder / WEIGHTS, state)
    manifest = dict(manifest, format=FORMAT, weights_sha256=hashlib.sha256(data).hexdigest(),
                    weights_bytes=len(data),
                    tensors={k: list(v.shape) for k, v in state.items()},
                    dtypes={k: dtype_name(v) for k, v in state.items()})
    _write_json(folder / MANIFEST, manifest)
    return folder


def _regular_file(path: Path) -> os.stat_result:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror or e})") from None
    if not stat.S_ISREG(st.st_mode):   # a link to /dev/zero or a FIFO: never read it
        raise CheckpointError(f"{path}: not a regular file")
    return st


def load_tensors(path: Path, expect: dict | None = None, sha256: str | None = None) -> dict:
    """Read a safetensors file; a truncated/crafted file or unexpected tensors -> CheckpointError."""
    from safetensors.torch import load_file
    _regular_file(path)
    if sha256 is not None and _sha256(path) != sha256:
        raise CheckpointError(f"{path}: contents do not match the manifest (truncated or modified)")
    try:
        tensors = load_file(str(path))
    except Exception as e:  # noqa: BLE001 - safetensors raises several kinds for bad files
        raise CheckpointError(f"{path}: not a valid safetensors file ({e})") from None
    if expect is not None:
        got = {k: list(v.shape) for k, v in tensors.items()}
        if set(got) != set(expect):
            missing, extra = sorted(set(expect) - set(got)), sorted(set(got) - set(expect))
            raise CheckpointError(f"{path}: tensors differ from the manifest "
                                  f"(missing {missing[:5]}, unexpected {extra[:5]})")
        for k, shape in expect.items():
            if list(shape) != got[k]:
                raise CheckpointError(f"{path}: tensor {k} has shape {got[k]}, manifest says {shape}")
    return tensors


def _check_weights_file(path: Path, manifest: dict, dtypes: dict) -> None:
    """Before anything is allocated: the file's size is what the manifest's tensors need,
    its header names the manifest's tensors, shapes and dtypes, and its hash matches."""
    size = _regular_file(path).st_size
    data = sum(math.prod(shape) * DTYPE_BYTES[dtypes[k]] for k, shape in manifest["tensors"].items())
    recorded = manifest.get("weights_bytes")
    if recorded is not None and size != recorded:
        raise CheckpointError(f"{path}: {size:,} bytes, the manifest says {recorded:,} "
                              f"(truncated or modified)")
    if size < 8 + 2 + data:
        raise CheckpointError(f"{path}: {size:,} bytes, but the manifest's tensors need "
                              f"{data:,} bytes of data plus a header (truncated or modified)")
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if not 2 <= n <= min(MAX_HEADER_BYTES, size - 8):
            raise CheckpointError(f"{path}: not a valid safetensors file (header of {n:,} bytes)")
        try:
            header = json.loads(f.read(n))
        except (ValueError, RecursionError):
            header = None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: not a valid safetensors file (unreadable header)")
    header.pop("__metadata__", None)
    got = {k: (v.get("shape"), _ST_DTYPES.get(v.get("dtype"))) if isinstance(v, dict) else None
           for k, v in header.items()}
    want = {k: (list(shape), dtypes[k]) for k, shape in manifest["tensors"].items()}
    if got != want:
        k = next((k for k in sorted(set(got) | set(want)) if got.get(k) != want.get(k)), "?")
        raise CheckpointError(f"{path}: tensor {k} in the file is {got.get(k)}, the manifest "
                              f"says {want.get(k)} (shape, dtype)")
    if size != 8 + n + data:
        raise CheckpointError(f"{path}: {size:,} bytes, but its header and tensors make "
                              f"{8 + n + data:,} (truncated or modified)")
    if _sha256(path) != manifest["weights_sha256"]:
        raise CheckpointError(f"{path}: contents do not match the manifest (truncated or modified)")


def plan_model(manifest: dict):
    """The manifest's model, built on the meta device (no memory): its tensors must be the
    manifest's, in shape and dtype, and their bytes within MAX_MODEL_BYTES.

    -> (cfg, build arguments, the model's dtypes: tensor name -> dtype name)."""
    from core import config as config_mod
    from core.model import build
    try:
        cfg = config_mod.from_dict(manifest["config"])
    except Exception as e:  # noqa: BLE001 - validation names the setting
        raise CheckpointError(f"manifest config is invalid: {e}") from None
    if cfg.model != manifest["model"]:
        raise CheckpointError(f"manifest says model {manifest['model']!r} but its config says {cfg.model!r}")
    dims = manifest["dims"]
    args = (cfg, len(manifest["item_ids"]), dims.get("text"), dims.get("image"))
    import torch
    try:
        with torch.device("meta"):   # the config's sizes are capped by validation: this ends quickly
            state = build(*args).state_dict()
    except (ValueError, TypeError, RuntimeError, OverflowError, MemoryError) as e:
        raise CheckpointError(f"cannot build the model the manifest describes: {e}") from None
    _check_shapes({k: list(v.shape) for k, v in state.items()}, manifest["tensors"], "the manifest")
    dtypes = {k: dtype_name(v) for k, v in state.items()}
    want = manifest.get("dtypes") or dtypes   # older manifests: the model's own dtypes
    wrong = sorted(k for k in dtypes if want[k] != dtypes[k])
    if wrong:
        raise CheckpointError(f"the manifest: tensor {wrong[0]} is {want[wrong[0]]}, the model "
                              f"needs {dtypes[wrong[0]]}")
    nbytes = sum(v.numel() * v.element_size() for v in state.values())
    if nbytes > MAX_MODEL_BYTES:
        raise CheckpointError(f"the manifest describes a model of {nbytes / 2**30:,.1f} GiB, more "
                              f"than the {MAX_MODEL_BYTES / 2**30:.0f} GiB allowed")
    return cfg, args, dtypes


def _build(manifest: dict, cfg, args):
    from core.model import build
    try:
        model = build(*args)
    except (ValueError, TypeError, RuntimeError, OverflowError, MemoryError) as e:
        raise CheckpointError(f"cannot build the model the manifest describes: {e}") from None
    if cfg.model == "msm4sr":
        model.use_ids = bool(manifest.get("use_ids", manifest["stage"] == "finetune"))
    return model


def build_model(manifest: dict):
    """A fresh model with the manifest's configuration and sizes (checked by plan_model first)."""
    cfg, args, _ = plan_model(manifest)
    return cfg, _build(manifest, cfg, args)


def load_model(path, device="cpu"):
    """(model in eval mode on `device`, config, manifest, folder) from a model folder.

    Order matters: the manifest, then its model on the meta device, then the weights
    file's size, header and hash; only then is memory allocated. Non-finite weights
    are refused."""
    folder, manifest = read_manifest(path)
    cfg, args, dtypes = plan_model(manifest)
    _check_weights_file(folder / WEIGHTS, manifest, dtypes)
    model = _build(manifest, cfg, args)
    tensors = load_tensors(folder / WEIGHTS, manifest["tensors"])
    check_state(model, tensors, folder / WEIGHTS)
    for k, t in tensors.items():
        if t.is_floating_point() and not bool(t.isfinite().all()):
            raise CheckpointError(f"{folder / WEIGHTS}: tensor {k} holds NaN or infinite values")
    model.load_state_dict(tensors)
    return model.to(device).eval(), cfg, manifest, folder


def check_state(model, tensors: dict, where) -> None:
    """The tensors must be exactly the model's, with the model's shapes and dtypes."""
    own = model.state_dict()
    _check_shapes({k: list(v.shape) for k, v in own.items()},
                  {k: list(v.shape) for k, v in tensors.items()}, where)
    for k, v in own.items():
        if tensors[k].dtype != v.dtype:   # load_state_dict would cast quietly
            raise CheckpointError(f"{where}: tensor {k} is {dtype_name(tensors[k])}, the model "
                                  f"needs {dtype_name(v)}")


def _check_shapes(own: dict, got: dict, where) -> None:
    if set(own) != set(got):
        raise CheckpointError(f"{where}: tensors do not fit the model "
                              f"(missing {sorted(set(own) - set(got))[:5]}, "
                              f"unexpected {sorted(set(got) - set(own))[:5]})")
    for k in own:
        if own[k] != got[k]:
            raise CheckpointError(f"{where}: tensor {k} has shape {got[k]}, the model needs {own[k]}")


# ---- workspace compatibility ---------------------------------------------
def _describe(ident: dict | None) -> str:
    if not ident:
        return "none"
    name = ident.get("source") or ident.get("model", "?")
    extra = [f"{k}={ident[k]}" for k in ("clip_model", "clip_pretrained", "keywords") if k in ident]
    return f"{name}/{ident.get('dim', '?')}" + (f" ({', '.join(extra)})" if extra else "")


def feature_differences(manifest: dict, workspace_ids: dict) -> list[str]:
    """What differs between the checkpoint's feature extractors and the workspace's."""
    feats = check_features(manifest, "checkpoint")
    mods = manifest.get("modalities", [])
    if not isinstance(mods, list) or not all(isinstance(m, str) for m in mods):
        raise CheckpointError(f"checkpoint: manifest field 'modalities' must be a list of names, "
                              f"got {json.dumps(mods)[:60]}")
    diffs = []
    for m in mods:
        mine, theirs = feats.get(m), workspace_ids.get(m)
        if theirs is None:
            diffs.append(f"{m} features: checkpoint {_describe(mine)}, workspace has none built")
        elif mine != theirs:
            keys = sorted(k for k in set(mine or {}) | set(theirs) if (mine or {}).get(k) != theirs.get(k))
            diffs.append(f"{m} model differs: checkpoint {_describe(mine)}, workspace {_describe(theirs)}"
                         f" (differing: {', '.join(keys)})")
    return diffs


def check_items(manifest: dict, ws_items) -> None:
    """Every checkpoint item must be in the workspace; extra workspace items must be new (is_new)."""
    known = set(manifest["item_ids"])
    ws_ids = {i.id for i in ws_items}
    missing = sorted(known - ws_ids)
    extra = sorted(i.id for i in ws_items if i.id not in known and not i.is_new)
    problems = []
    if missing:
        problems.append(f"{len(missing)} checkpoint items are not in the workspace (e.g. {missing[:3]})")
    if extra:
        problems.append(f"{len(extra)} workspace items are unknown to the checkpoint and not marked "
                        f"new (e.g. {extra[:3]})")
    if problems:
        raise CheckpointError("checkpoint does not match the workspace: " + "; ".join(problems))


# ---- resumable training state ----------------------------------------------
def save_state(folder, model, optimizer, state: dict) -> Path:
    """Model + Adam state + counters, for --resume. Atomic as a whole folder: written to
    FOLDER.new, then swapped in (FOLDER -> FOLDER.old, FOLDER.new -> FOLDER), so a kill at
    any moment leaves a complete previous or new state (see `state_folder`)."""
    import shutil
    final = Path(folder)
    folder, old = final.with_name(final.name + ".new"), final.with_name(final.name + ".old")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    w_sha = save_tensors(folder / WEIGHTS, model.state_dict())
    opt = optimizer.state_dict()
    flat, steps = {}, {}
    for pid, st in opt["state"].items():
        for key, val in st.items():
            if key == "step":
                steps[str(pid)] = float(val)
            else:
                flat[f"{pid}.{key}"] = val
    o_sha = save_tensors(folder / OPTIMIZER, flat)
    _write_json(folder / STATE, dict(state, weights_sha256=w_sha, optimizer_sha256=o_sha,
                                     adam_steps=steps, param_groups=opt["param_groups"]))
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(folder, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def state_folder(folder) -> Path | None:
    """The complete resumable state at FOLDER, or at FOLDER.old when a kill fell between
    save_state's two renames; None when there is none."""
    folder = Path(folder)
    for f in (folder, folder.with_name(folder.name + ".old")):
        if (f / STATE).is_file():
            return f
    return None


def load_state(folder, model, optimizer) -> dict:
    import torch
    folder = Path(folder)
    try:
        state = json.loads((folder / STATE).read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{folder / STATE}: unreadable ({e})") from None
    tensors = load_tensors(folder / WEIGHTS, sha256=state.get("weights_sha256"))
    check_state(model, tensors, folder / WEIGHTS)
    model.load_state_dict(tensors)
    flat = load_tensors(folder / OPTIMIZER, sha256=state.get("optimizer_sha256"))
    opt_state: dict = {}
    for name, val in flat.items():
        pid, key = name.split(".", 1)
        opt_state.setdefault(int(pid), {})[key] = val
    for pid, step in state.get("adam_steps", {}).items():
        opt_state.setdefault(int(pid), {})["step"] = torch.tensor(step, dtype=torch.float32)
    try:
        optimizer.load_state_dict({"state": opt_state, "param_groups": state["param_groups"]})
    except (KeyError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{folder}: optimizer state does not fit ({e})") from None
    return state
