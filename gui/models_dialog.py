"""Models dialog: the checkpoints on disk, their manifests, and loading one.

Checkpoints are folders holding a manifest.json: the built-in ones in
trained_models/ (core.paths: the wheel's copy or the checkout's), the workspace's
models/ and the checkpoints its training runs left in runs/. Loading happens on a worker; a refused
checkpoint (features mismatch, corrupt or truncated file) shows the reason and
the app goes on with the model it had.
"""
from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QPushButton,
                               QSplitter, QTextBrowser, QTreeWidget, QTreeWidgetItem, QVBoxLayout)

from core import paths
from core.errors import CheckpointError
from core.manifest import check_manifest, read_json
from gui.model_calls import load_recommender
from gui.workers import run_task

MANIFEST = "manifest.json"
PATH_ROLE = Qt.ItemDataRole.UserRole


def find_checkpoints(roots: list[tuple[str, Path]], max_depth: int = 4) -> list[dict]:
    """Worker: every folder under the roots that holds a manifest, with the manifest read.

    Returns dicts {group, path, manifest (dict|None), problem (str|None), mtime}.
    """
    out = []
    for group, root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        found = []
        _walk(root, max_depth, found)
        for d in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True):
            manifest, problem = read_manifest(d)
            out.append({"group": group, "path": str(d), "manifest": manifest, "problem": problem,
                        "mtime": d.stat().st_mtime})
    return out


def _walk(d: Path, depth: int, found: list) -> None:
    if (d / MANIFEST).is_file():
        found.append(d)
    if depth <= 0:
        return
    try:
        subs = [p for p in d.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return
    for p in subs:
        _walk(p, depth - 1, found)


def read_manifest(d: Path) -> tuple[dict | None, str | None]:
    """(manifest or None, problem or None); never raises, so one bad folder cannot stop the
    listing. A manifest that reads but would be refused is shown with its problem."""
    p = Path(d) / MANIFEST
    try:
        data = read_json(p)
    except CheckpointError as e:
        return None, str(e).replace(f"{p}: ", "")
    try:
        check_manifest(data, p)
    except CheckpointError as e:
        return data, str(e).replace(f"{p}: ", "")
    return data, None


def manifest_html(path: str, manifest: dict | None, problem: str | None) -> str:
    h = [f"<p><code>{_e(path)}</code></p>"]
    if problem:
        h.append(f"<p style='color:#c00'><b>Cannot use this checkpoint:</b> {_e(problem)}</p>")
    if not manifest:
        return "".join(h)
    cfg = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
    ids = manifest.get("item_ids")
    head = [("Model", manifest.get("model") or cfg.get("model")), ("Stage", manifest.get("stage")),
            ("Created", manifest.get("created")),
            ("Items", len(ids) if isinstance(ids, list) else None),
            ("Modalities", ", ".join(map(str, manifest["modalities"]))
             if isinstance(manifest.get("modalities"), list) else None)]
    h.append(_table([(k, v) for k, v in head if v not in (None, "")]))
    keys = ("hidden", "layers", "heads", "max_len", "modalities", "pretrain", "mixup", "cmcl", "nip",
            "pretrain_epochs", "finetune_epochs", "pretrain_lr", "finetune_lr", "seed", "device")
    if cfg:
        h.append("<h4>Configuration</h4>")
        h.append(_table([(k, cfg[k]) for k in keys if k in cfg]))
    metrics = manifest.get("metrics")
    if isinstance(metrics, dict) and metrics:
        h.append("<h4>Metrics</h4>")
        h.append(_metrics_table(metrics))
    feats = manifest.get("features")
    if feats:
        h.append("<h4>Feature identities</h4>")
        h.append(_table(_flatten(feats)) if isinstance(feats, dict) else f"<p>{_e(feats)}</p>")
    skip = ("model", "stage", "created", "item_ids", "modalities", "config", "metrics", "features",
            "tensors", "weights_sha256")
    rest = {k: v for k, v in manifest.items() if k not in skip}
    if isinstance(manifest.get("tensors"), dict):
        rest["tensors"] = f"{len(manifest['tensors'])} tensors"
    if rest:
        h.append("<h4>Other</h4>")
        h.append(_table(_flatten(rest)))
    return "".join(h)


def _metrics_table(metrics: dict) -> str:
    """{'valid/ndcg@10': x, 'test/ndcg@10': y, ...} (or nested) as metric rows x split columns."""
    flat = dict(_flatten(metrics, sep="/"))
    splits, names, cells = [], [], {}
    for k, v in flat.items():
        split, _, name = k.rpartition("/")
        if not isinstance(v, (int, float)) or not split:
            continue
        if split not in splits:
            splits.append(split)
        if name not in names:
            names.append(name)
        cells[split, name] = v
    if not cells:
        return _table(flat.items())
    head = "".join(f"<th style='padding:0 8px'>{_e(s)}</th>" for s in splits)
    rows = []
    for n in names:
        tds = []
        for s in splits:
            v = cells.get((s, n))
            text = "" if v is None else (str(v) if isinstance(v, int) or n == "cases" else f"{v:.4f}")
            tds.append(f"<td align='right' style='padding:0 8px'>{text}</td>")
        rows.append(f"<tr><td style='color:#555'>{_e(n)}</td>{''.join(tds)}</tr>")
    return f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>"


def _flatten(d, prefix: str = "", sep: str = ".") -> list[tuple[str, object]]:
    rows = []
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            rows += _flatten(v, name + sep, sep)
        else:
            rows.append((name, v))
    return rows


def _table(rows) -> str:
    cells = []
    for k, v in rows:
        if isinstance(v, float):
            v = f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
        elif isinstance(v, (list, tuple)):
            v = json.dumps(v)
        text = str(v)
        if len(text) > 120:
            text = text[:117] + "…"
        cells.append(f"<tr><td style='padding-right:12px;color:#555'>{_e(k)}</td><td>{_e(text)}</td></tr>")
    return "<table>" + "".join(cells) + "</table>"


def _e(x) -> str:
    return str(x).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class ModelsDialog(QDialog):
    modelLoaded = Signal(str)       # path
    loadFailed = Signal(str)        # the reason
    listed = Signal()

    def __init__(self, session, parent=None, builtin_dir: Path | None = None):
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.resize(820, 480)
        self.session = session
        self.builtin_dir = Path(builtin_dir) if builtin_dir else paths.trained_models_dir()
        self.entries: list[dict] = []
        self.last_error: str | None = None
        self._loading = None

        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Checkpoint", "Model", "Stage", "NDCG@10"])
        self.tree.setRootIsDecorated(True)
        self.tree.setColumnWidth(0, 170)
        self.tree.setColumnWidth(1, 70)
        self.tree.setColumnWidth(2, 70)
        self.details = QTextBrowser()
        self.details.setOpenLinks(False)
        self.status = QLabel(wordWrap=True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setMinimumHeight(self.status.fontMetrics().lineSpacing() * 2 + 4)
        self.status.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.load_btn = QPushButton("Load")
        self.load_btn.setDefault(True)
        self.refresh_btn = QPushButton("Refresh")
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.tree)
        split.addWidget(self.details)
        split.setSizes([380, 440])
        buttons = QHBoxLayout()
        buttons.addWidget(self.refresh_btn)
        buttons.addWidget(self.load_btn)
        buttons.addStretch(1)
        buttons.addWidget(close)
        lay = QVBoxLayout(self)
        lay.addWidget(split, 1)
        lay.addWidget(self.status)
        lay.addLayout(buttons)

        self.tree.currentItemChanged.connect(self._show_current)
        self.tree.itemDoubleClicked.connect(lambda *_: self.load_selected())
        self.load_btn.clicked.connect(self.load_selected)
        self.refresh_btn.clicked.connect(self.refresh)
        session.workspaceChanged.connect(self.refresh)
        self.refresh()

    def roots(self) -> list[tuple[str, Path]]:
        roots = [("Built-in (trained_models/)", self.builtin_dir)]
        if self.session.ws_path is not None:
            ws = Path(self.session.ws_path)
            roots += [("Workspace models", ws / "models"), ("Training runs", ws / "runs")]
        return roots

    def refresh(self) -> None:
        self.status.setText("Looking for checkpoints…")
        self.load_btn.setEnabled(False)
        run_task(find_checkpoints, self.roots(), on_done=self._listed,
                 on_error=lambda e, tb: self.status.setText(f"Could not list checkpoints: {e}"))

    def _listed(self, entries: list[dict]) -> None:
        self.entries = entries
        self.tree.clear()
        groups: dict[str, QTreeWidgetItem] = {}
        current = str(self.session.model_path) if self.session.model_path else None
        for e in entries:
            g = groups.get(e["group"])
            if g is None:
                g = groups[e["group"]] = QTreeWidgetItem(self.tree, [e["group"]])
                g.setFlags(g.flags() & ~Qt.ItemFlag.ItemIsSelectable)
                g.setExpanded(True)
            m = e["manifest"] or {}
            cfg = m.get("config") if isinstance(m.get("config"), dict) else {}
            metrics = m.get("metrics") if isinstance(m.get("metrics"), dict) else {}
            ndcg = _find_metric(metrics, "ndcg@10")
            name = Path(e["path"]).name
            if g.text(0).startswith("Training runs"):
                name = str(Path(e["path"]).relative_to(Path(self.session.ws_path) / "runs"))
            row = QTreeWidgetItem(g, [name + ("  (loaded)" if e["path"] == current else ""),
                                      str(m.get("model") or cfg.get("model") or "?"),
                                      str(m.get("stage") or ""),
                                      f"{ndcg:.4f}" if isinstance(ndcg, (int, float)) else ""])
            row.setData(0, PATH_ROLE, e["path"])
            row.setToolTip(0, e["path"])
            if e["problem"]:
                row.setForeground(0, Qt.GlobalColor.red)
                row.setToolTip(0, f"{e['path']}\n{e['problem']}")
        if not entries:
            self.details.setHtml("<p>No checkpoints yet. Train a model in the Training panel.</p>")
        self.status.setText(f"{len(entries)} checkpoint(s)." if entries else "No checkpoints found.")
        first = next((groups[g].child(0) for g in groups if groups[g].childCount()), None)
        if first is not None:
            self.tree.setCurrentItem(first)
        self.listed.emit()

    def _entry(self, path: str) -> dict | None:
        return next((e for e in self.entries if e["path"] == path), None)

    def _show_current(self, cur, _prev=None) -> None:
        path = cur.data(0, PATH_ROLE) if cur is not None else None
        e = self._entry(path) if path else None
        self.load_btn.setEnabled(e is not None and self._loading is None)
        if e is not None:
            self.details.setHtml(manifest_html(e["path"], e["manifest"], e["problem"]))

    def select_path(self, path) -> bool:
        """Select a checkpoint row by folder (for tests and for the main window)."""
        path = str(path)
        for g in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(g)
            for c in range(top.childCount()):
                if top.child(c).data(0, PATH_ROLE) == path:
                    self.tree.setCurrentItem(top.child(c))
                    return True
        return False

    def load_selected(self) -> None:
        cur = self.tree.currentItem()
        path = cur.data(0, PATH_ROLE) if cur is not None else None
        if not path or self._loading is not None:
            return
        if self.session.ws_path is None:
            self._refused(path, "open a workspace first: a model is loaded against a workspace's items")
            return
        self.load_btn.setEnabled(False)
        self.status.setText(f"Loading {Path(path).name}…")
        self._loading = path
        run_task(load_recommender, path, self.session.ws_path,
                 on_done=lambda rec: self._loaded(path, rec),
                 on_error=lambda exc, tb: self._refused(path, str(exc) or type(exc).__name__))

    def _loaded(self, path: str, rec) -> None:
        self._loading = None
        self.last_error = None
        self.session.set_recommender(rec, path)
        self.status.setText(f"Loaded {path}.")
        self.session.info(f"Loaded model {path}")
        self.load_btn.setEnabled(True)
        cur = self.tree.currentItem()
        for g in range(self.tree.topLevelItemCount()):      # move the "(loaded)" mark
            top = self.tree.topLevelItem(g)
            for c in range(top.childCount()):
                row = top.child(c)
                row.setText(0, row.text(0).replace("  (loaded)", "")
                            + ("  (loaded)" if row.data(0, PATH_ROLE) == path else ""))
        if cur is not None:
            self.tree.setCurrentItem(cur)
        self.modelLoaded.emit(path)

    def _refused(self, path: str, reason: str) -> None:
        self._loading = None
        self.last_error = reason
        short = reason.replace(f"{path}/", "").replace(f"{path}: ", "")   # the row names the folder
        self.status.setText(f"<b style='color:#c00'>Refused {_e(Path(path).name)}:</b> {_e(short)}")
        e = self._entry(path)
        if e is not None and self.tree.currentItem() is not None \
                and self.tree.currentItem().data(0, PATH_ROLE) == path:
            self.details.setHtml(manifest_html(path, e["manifest"], reason))
        self.session.error(f"Could not load {path}: {reason}")
        self.load_btn.setEnabled(True)
        self.loadFailed.emit(reason)


def _find_metric(metrics: dict, name: str):
    """A metric in a flat or nested dict ({'test': {'ndcg@10': ..}} or {'test/ndcg@10': ..}); test first."""
    flat = dict(_flatten(metrics, sep="/"))
    if isinstance(flat.get(f"test/{name}"), (int, float)):
        return flat[f"test/{name}"]
    for k, v in metrics.items():
        if isinstance(v, dict):
            found = _find_metric(v, name)
            if found is not None:
                return found
        elif k.lower().endswith(name) and isinstance(v, (int, float)):
            return v
    return None
