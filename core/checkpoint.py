"""Checkpoints: safetensors weights + a JSON manifest. Never pickle, never torch.load.

A model folder holds `weights.safetensors` and `manifest.json`. A resumable
training state (runs/<run>/<stage>/last/) adds `optimizer.safetensors` (Adam's
tensors, flattened) and `state.json` (epoch, step counts, early-stopping state).
Every file is written to a temporary name and renamed, weights before the
manifest, and the manifest records the weights' SHA-256: a torn or edited pair
is refused on load.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from core.errors import CheckpointError

FORMAT = "msm4sr-studio/1"
WEIGHTS, MANIFEST, OPTIMIZER, STATE = "weights.safetensors", "manifest.json", "optimizer.safetensors", "state.json"


def _atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_tensors(path: Path, tensors: dict) -> str:
    from safetensors.torch import save
    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()})
    _atomic_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def _write_json(path: Path, obj: dict) -> None:
    _atomic_bytes(path, json.dumps(obj, indent=1).encode())


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---- model folders ----------------------------------------------------------
def save_model(folder, model, manifest: dict) -> Path:
    """Write weights then manifest (with tensor names/shapes and the weights hash)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    digest = save_tensors(folder / WEIGHTS, state)
    manifest = dict(manifest, format=FORMAT, weights_sha256=digest,
                    tensors={k: list(v.shape) for k, v in state.items()})
    _write_json(folder / MANIFEST, manifest)
    return folder


def read_manifest(path) -> tuple[Path, dict]:
    """A model folder or its manifest.json -> (folder, manifest)."""
    path = Path(path)
    folder = path.parent if path.name == MANIFEST else path
    mpath = folder / MANIFEST
    if not mpath.is_file():
        raise CheckpointError(f"{folder}: not a model folder (no {MANIFEST})")
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"{mpath}: unreadable manifest ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{mpath}: not an MSM4SR Studio manifest (format "
                              f"{manifest.get('format') if isinstance(manifest, dict) else '?'!r}, "
                              f"expected {FORMAT!r})")
    for key, kind in (("model", str), ("stage", str), ("config", dict), ("item_ids", list),
                      ("tensors", dict), ("dims", dict), ("weights_sha256", str)):
        if not isinstance(manifest.get(key), kind):
            raise CheckpointError(f"{mpath}: manifest field {key!r} missing or not a {kind.__name__}")
    if not all(isinstance(i, str) for i in manifest["item_ids"]):
        raise CheckpointError(f"{mpath}: item_ids must be strings")
    _int = lambda x: isinstance(x, int) and not isinstance(x, bool)  # noqa: E731
    shapes = manifest["tensors"].values()
    if not all(isinstance(v, list) and all(_int(n) and n >= 0 for n in v) for v in shapes):
        raise CheckpointError(f"{mpath}: tensors must map names to shapes (lists of sizes)")
    if not all(_int(v) and 0 < v <= 1 << 20 for v in manifest["dims"].values()):
        raise CheckpointError(f"{mpath}: dims must be feature widths (positive integers)")
    return folder, manifest


def load_tensors(path: Path, expect: dict | None = None, sha256: str | None = None) -> dict:
    """Read a safetensors file; a truncated/crafted file or unexpected tensors -> CheckpointError."""
    from safetensors.torch import load_file
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
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


def build_model(manifest: dict):
    """A fresh model with the manifest's configuration and sizes."""
    from core import config as config_mod
    from core.model import build
    try:
        cfg = config_mod.from_dict(manifest["config"])
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"manifest config is invalid: {e}") from None
    if cfg.model != manifest["model"]:
        raise CheckpointError(f"manifest says model {manifest['model']!r} but its config says {cfg.model!r}")
    dims = manifest["dims"]
    # sizes a crafted config could use to exhaust memory or time (even building 2**31 layers
    # on the meta device never ends): far above any model this program trains
    for name, cap in (("layers", 64), ("experts", 1024), ("heads", 1024), ("hidden", 1 << 16),
                      ("inner", 1 << 18), ("max_len", 1 << 16), ("pool_dim", 1 << 16)):
        if not 0 < getattr(cfg, name) <= cap:
            raise CheckpointError(f"manifest config: {name} = {getattr(cfg, name)} is out of range "
                                  f"(1..{cap})")
    import torch
    try:
        # first on the meta device (no memory): a crafted config (sizes of 2**40) must not
        # allocate; the sizes must be the manifest's tensors before a real model is built
        with torch.device("meta"):
            shapes = {k: list(v.shape) for k, v in
                      build(cfg, len(manifest["item_ids"]), dims.get("text"), dims.get("image"))
                      .state_dict().items()}
        _check_shapes(shapes, manifest["tensors"], "the manifest")
        model = build(cfg, len(manifest["item_ids"]), dims.get("text"), dims.get("image"))
    except (ValueError, TypeError, RuntimeError, OverflowError, MemoryError) as e:
        raise CheckpointError(f"cannot build the model the manifest describes: {e}") from None
    if cfg.model == "msm4sr":
        model.use_ids = bool(manifest.get("use_ids", manifest["stage"] == "finetune"))
    return cfg, model


def load_model(path, device="cpu"):
    """(model in eval mode on `device`, config, manifest, folder) from a model folder."""
    folder, manifest = read_manifest(path)
    cfg, model = build_model(manifest)
    tensors = load_tensors(folder / WEIGHTS, manifest["tensors"], manifest["weights_sha256"])
    check_state(model, tensors, folder / WEIGHTS)
    model.load_state_dict(tensors)
    return model.to(device).eval(), cfg, manifest, folder


def check_state(model, tensors: dict, where) -> None:
    """The tensors must be exactly the model's, with the model's shapes."""
    _check_shapes({k: list(v.shape) for k, v in model.state_dict().items()},
                  {k: list(v.shape) for k, v in tensors.items()}, where)


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
    diffs = []
    for m in manifest.get("modalities", []):
        mine, theirs = manifest.get("features", {}).get(m), workspace_ids.get(m)
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
