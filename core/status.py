"""What `msm4sr info` and the app report about a workspace, read cheaply (no torch)."""
from __future__ import annotations

import time
from pathlib import Path

from core.errors import CheckpointError
from core.features import store
from core.manifest import MANIFEST, check_manifest, read_json, safe_metrics
from core.workspace import Workspace


def workspace_info(ws: Workspace) -> dict:
    info = {"workspace": str(ws.path), **ws.counts(), "features": {}, "models": []}
    for modality in store.MODALITIES:
        path = store.path_for(ws.features_dir, modality)
        if path.exists():
            meta = store.read_meta(path)
            meta.pop("ids", None)
            info["features"][modality] = meta
        else:
            info["features"][modality] = None
    image_state = ws.get_meta("image_modality") or {}
    if info["features"]["image"] is None and image_state.get("available") is False:
        info["image_unavailable"] = image_state.get("reason", "unavailable")
    for manifest in sorted(ws.models_dir.glob("*/manifest.json")):
        info["models"].append(model_entry(manifest.parent))
    info["problems"] = len(ws.problems())
    return info


def model_entry(folder: Path) -> dict:
    """One model folder for the listing. A bad one is listed with its problem, never raised:
    one crafted manifest must not hide the rest of the workspace."""
    entry = {"path": str(folder), "model": None, "stage": None, "metrics": {}}
    try:
        m = read_json(folder / MANIFEST)
        entry.update({k: m[k][:40] if isinstance(m.get(k), str) else None for k in ("model", "stage")})
        entry["metrics"] = safe_metrics(m.get("metrics"))
        check_manifest(m, folder / MANIFEST)
    except CheckpointError as e:
        entry["problem"] = str(e).replace(f"{folder / MANIFEST}: ", "")
    return entry


def format_info(info: dict) -> str:
    def day(ts):
        return time.strftime("%Y-%m-%d", time.gmtime(ts)) if ts is not None else "-"
    t0, t1 = info["time_range"]
    lines = [
        f"workspace      {info['workspace']}",
        f"users          {info['users']:,}",
        f"items          {info['items']:,} ({info['interacted_items']:,} interacted, "
        f"{info['items_with_image']:,} with an image, {info['cold_items']:,} cold, "
        f"{info['new_items']:,} new)",
        f"interactions   {info['interactions']:,}",
        f"time range     {day(t0)} .. {day(t1)}",
        f"sequences      {info['saved_sequences']} saved",
    ]
    for source, n in info["keyword_sources"].items():
        lines.append(f"keywords       {source}: {n:,} items")
    for modality, meta in info["features"].items():
        if meta is None and modality == "image" and info.get("image_unavailable"):
            lines.append(f"features       image: unavailable: {info['image_unavailable']}")
        elif meta is None:
            lines.append(f"features       {modality}: not built")
        else:
            detail = meta.get("source") or meta.get("model", "")
            lines.append(f"features       {modality}: {detail}")
    for m in info["models"]:
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in sorted(m.get("metrics", {}).items())
                            if isinstance(v, (int, float)))[:120]
        line = f"model          {Path(m['path']).name}: {m.get('model')} {m.get('stage')} {metrics}"
        if m.get("problem"):
            line = f"model          {Path(m['path']).name}: cannot be used: {m['problem'][:200]}"
        lines.append(line)
    if info["problems"]:
        lines.append(f"problems       {info['problems']} (see `msm4sr features --report`)")
    return "\n".join(lines)
