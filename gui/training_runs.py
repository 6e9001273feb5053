"""A workspace's training runs as the training panel sees them: the one to resume, what
a resume keeps and changes, the history a resumed run's plots continue from, and the words
for a run's result.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

STAGE_ORDER = {"pretrain": 0, "finetune": 1}


def fmt_seconds(s) -> str:
    if s is None:
        return "?"
    s = int(max(0, s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def summary(metrics: dict, keys=("ndcg@10", "recall@10")) -> str:
    """'test ndcg@10 0.1234, ...' from flat ('test/ndcg@10') or nested ({'test': {...}}) metrics."""
    flat = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            flat.update({f"{k}/{kk}": vv for kk, vv in v.items()})
        else:
            flat[k] = v
    parts = [f"{k.replace('/', ' ')} {v:.4f}" for k, v in flat.items()
             if isinstance(v, (int, float)) and k.split("/")[-1] in keys and not k.startswith("valid")]
    return ", ".join(parts) or "no metrics"


def latest_run(runs_dir: Path) -> str | None:
    """The most recently active run folder (by its progress log), for "Resume last run"."""
    try:
        runs = [d for d in runs_dir.iterdir() if (d / "config.json").is_file()]
    except OSError:
        return None
    def active(d: Path) -> float:
        log = d / "progress.jsonl"
        return (log if log.exists() else d).stat().st_mtime
    return max(runs, key=active).name if runs else None


def html(text) -> str:
    return (str(text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def resume_check(ws_path, run: str | None, args: list[str]) -> tuple[str | None, str]:
    """Before a resume: (a problem that stops it, or None; a note of what changes). A resumed
    run takes the form's new epochs, budgets and device, and keeps its model settings."""
    import json
    from core.config import from_dict, parse_sets, resume_overrides
    if not run:
        return "there is no earlier run in this workspace to resume; untick “Resume last run”", ""
    saved = Path(ws_path) / "runs" / run / "config.json"
    if not saved.is_file():
        return f"run {run} has no saved settings ({saved.name} is missing)", ""
    sets = [args[k + 1] for k, a in enumerate(args) if a == "--set"]
    changes = parse_sets(sets)
    if "--model" in args:
        changes["model"] = args[args.index("--model") + 1]
    old = from_dict(json.loads(saved.read_text()))
    try:
        differ = resume_overrides(old, changes)
    except Exception as e:  # noqa: BLE001 - the message names what differs
        return (f"{e}. Untick “Resume last run” to start a new run with these settings, "
                "or set them back."), ""
    note = "".join(f", {LABELS.get(k, k)} {getattr(old, k)} → {v}" for k, v in differ.items())
    return None, (f" with{note[1:]}" if note else "")


LABELS = {"pretrain_epochs": "pre-train epochs", "finetune_epochs": "fine-tune epochs",
          "device": "device", "patience": "patience"}


def run_history(run_dir) -> list[dict]:
    """The step and epoch events of a run's completed epochs, oldest first: what a resumed
    run continues from. An epoch cut short by a cancel (no epoch event) is left out, and an
    epoch done twice (a resume repeats the one that was cut) counts once."""
    log = Path(run_dir) / "progress.jsonl"
    if not log.is_file():
        return []
    done: dict[tuple[str, int], list[dict]] = {}
    pending: list[dict] = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue
        kind = ev.get("event") if isinstance(ev, dict) else None
        if kind == "start":
            pending = []
        elif kind == "step":
            pending.append(ev)
        elif kind == "epoch":
            key = (str(ev.get("stage")), int(ev.get("epoch") or 0))
            done[key] = [e for e in pending if (e.get("stage"), e.get("epoch")) == key] + [ev]
            pending = []
    out = []
    for key in sorted(done, key=lambda k: (STAGE_ORDER.get(k[0], 9), k[1])):
        out += done[key]
    return out


def parse_lines(lines: list[bytes]) -> list:
    """The trainer's stdout lines: a dict per JSON progress line, the text of any other line."""
    out = []
    for raw in lines:
        line = raw.decode("utf-8", "replace").strip()
        if not line:
            continue
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            ev = None
        out.append(ev if isinstance(ev, dict) else line)
    return out


def child_environment(repo: Path):
    """The training process's environment: unbuffered (one JSON line as soon as it is
    printed) and able to import this checkout."""
    from PySide6.QtCore import QProcessEnvironment
    env = QProcessEnvironment.systemEnvironment()
    env.insert("PYTHONUNBUFFERED", "1")
    path = env.value("PYTHONPATH", "")
    env.insert("PYTHONPATH", str(repo) + (os.pathsep + path if path else ""))
    return env


def peak_memory_mb(pid: int) -> float | None:
    """The training process's peak resident memory (Linux /proc; None elsewhere). One small
    file read, so the panel can show it with every progress line."""
    try:
        with open(f"/proc/{int(pid)}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None
