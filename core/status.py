"""What `msm4sr info` and the app report about a workspace, read cheaply (no torch)."""
from __future__ import annotations

import json
import time
from pathlib import Path

from core.errors import CheckpointError
from core.features import store
from core.manifest import MANIFEST, check_manifest, read_json, safe_metrics
from core.splits import MIN_EVAL_ITEMS
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
    info.update(evaluation_users(ws))
    return info


def evaluation_users(ws: Workspace) -> dict:
    """How many users evaluation uses, and why the rest are left out: a user needs
    MIN_EVAL_ITEMS warm (not cold-start) interactions, and holding cold items out can take a
    user below that (core.splits.leave_one_out). Counted in SQL, no sequences in memory."""
    row = ws.db.execute(
        "SELECT COALESCE(SUM(warm >= ?1), 0), COALESCE(SUM(warm < ?1 AND total >= ?1), 0), "
        "COALESCE(SUM(total < ?1), 0) FROM (SELECT i.user, COUNT(*) AS total, "
        "SUM(COALESCE(it.cold, 0) = 0) AS warm FROM interactions i "
        "LEFT JOIN items it ON it.id = i.item GROUP BY i.user)", (MIN_EVAL_ITEMS,)).fetchone()
    return {"evaluation_users": row[0], "short_after_cold": row[1], "short_users": row[2]}


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


def _users_note(info: dict) -> str:
    """Why evaluation uses fewer users than the workspace has, when it does."""
    left = info["users"] - info["evaluation_users"]
    if not left:
        return " (all evaluated)" if info["users"] else ""
    why = []
    if info["short_after_cold"]:
        why.append(f"{info['short_after_cold']:,} fall below {MIN_EVAL_ITEMS} once the "
                   f"{info['cold_items']:,} cold-start items are held out")
    if info["short_users"]:
        n = info["short_users"]
        why.append(f"{n:,} {'has' if n == 1 else 'have'} fewer than {MIN_EVAL_ITEMS} interactions")
    return (f"; evaluation uses {info['evaluation_users']:,}: {left:,} "
            f"{'has' if left == 1 else 'have'} too few warm items for a validation and a test "
            f"target (needs {MIN_EVAL_ITEMS}): " + "; ".join(why))


def format_info(info: dict) -> str:
    def day(ts):
        return time.strftime("%Y-%m-%d", time.gmtime(ts)) if ts is not None else "-"
    t0, t1 = info["time_range"]
    lines = [
        f"workspace      {info['workspace']}",
        f"users          {info['users']:,}" + _users_note(info),
        f"items          {info['items']:,} ({info['interacted_items']:,} interacted, "
        f"{info['items_with_image']:,} with an image, {info['cold_items']:,} cold, "
        f"{info['new_items']:,} new)",
        f"interactions   {info['interactions']:,}",
        f"time range     {day(t0)} .. {day(t1)}",
        f"sequences      {info['saved_sequences']} saved from the app (named item sequences "
        f"kept for recommending; not training data)",
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


def run_state(ws: Workspace, path) -> str | None:
    """For a model path with no manifest: what state its run is in and what to do, or None
    when no run of that name exists. A run lives in runs/NAME until it finishes, and only
    then is models/NAME written."""
    path = Path(path).resolve()
    name = None
    for base in (ws.models_dir.resolve(), ws.runs_dir.resolve()):
        if path.is_relative_to(base) and path != base:
            name = path.relative_to(base).parts[0]
    run = ws.runs_dir / name if name else None
    if run is None or not run.is_dir():
        return None
    last_epoch: dict[str, int] = {}
    try:
        with open(run / "progress.jsonl", encoding="utf-8", errors="replace") as f:
            for line in f:
                if '"epoch"' not in line[:40]:   # skip the many step events unparsed
                    continue
                try:
                    e = json.loads(line)
                    if e.get("event") == "epoch":
                        last_epoch[str(e["stage"])] = int(e["epoch"])
                except (ValueError, KeyError, TypeError):
                    continue
    except OSError:
        pass
    stages = []
    for stage in ("pretrain", "finetune"):
        sdir = run / stage
        if (sdir / "done.json").is_file():
            stages.append(f"{stage} finished")
        elif sdir.is_dir():
            n = last_epoch.get(stage)
            stages.append(f"{stage} stopped after epoch {n}" if n else f"{stage} stopped in its first epoch")
        elif stage == "finetune":
            stages.append("finetune not started")
    return (f"run {name!r} has not finished ({', '.join(stages)}; its state is in {run}), so "
            f"there is no model {ws.models_dir / name} yet. Resume it with `msm4sr train "
            f"{ws.path} --run {name} --resume`; evaluate once it has finished")
