"""Compare models: two or three models' top-k for the current sequence side by side
(core.explore.compare), items every model has shaded, each rank's change against the
first model marked, and their stored metrics in one table with the popularity
reference. A model without test metrics can be evaluated: `msm4sr evaluate --json` runs
as a QProcess and its numbers fill the row.

Models are loaded and asked on workers; the loaded model of the window is reused (under
its lock), others are loaded once per dialog."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from PySide6.QtCore import QProcess, Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QFileDialog, QHBoxLayout, QHeaderView,
                               QLabel, QListWidget, QListWidgetItem, QPushButton, QSpinBox,
                               QTableWidget, QTableWidgetItem, QVBoxLayout)

from gui.model_calls import model_lock
from gui.workers import run_for

PATH_ROLE = Qt.ItemDataRole.UserRole
IN_ALL = QColor(34, 197, 94, 45)
METRIC_COLUMNS = (("valid", "recall@10"), ("valid", "ndcg@10"), ("test", "recall@10"),
                  ("test", "ndcg@10"), ("cold", "recall@10"), ("cold", "ndcg@10"),
                  ("test_popularity", "recall@10"), ("test_popularity", "ndcg@10"),
                  ("cold_popularity", "recall@10"))
HEADERS = ("model", "valid R@10", "valid N@10", "test R@10", "test N@10", "cold R@10",
           "cold N@10", "popularity test R@10", "popularity test N@10", "popularity cold R@10")


def model_folders(ws_path, current=None) -> list[Path]:
    """The window's model first, then every WS/models/<run> with a manifest, newest first."""
    found = sorted(Path(ws_path, "models").glob("*/manifest.json"), key=lambda p: -p.stat().st_mtime)
    out = [Path(current)] if current else []
    for m in found:
        if all(m.parent.resolve() != o.resolve() for o in out):
            out.append(m.parent)
    return out


def compare_models(paths: list[str], ws_path, sequence: list[str], k: int, loaded: dict):
    """Worker: load what is not loaded yet, then core.explore.compare with every model's
    lock held. Returns (Comparison, {path: Recommender})."""
    from core.explore.compare import compare, model_names
    from core.recommend import Recommender
    from core.workspace import Workspace
    recs = dict(loaded)
    ws = None
    for p in paths:
        if p not in recs:
            ws = ws or Workspace.open(ws_path)      # kept open: a Recommender reads its workspace later
            recs[p] = Recommender.load(Path(p), ws)
    names = model_names(paths)
    locks = [model_lock(recs[p]) for p in paths]
    for lock in dict.fromkeys(locks):
        lock.acquire()
    try:
        with Workspace.open(ws_path) as view:
            c = compare(view, {n: recs[p] for n, p in zip(names, paths)}, sequence, k=k,
                        exclude_sequence=True)
    finally:
        for lock in dict.fromkeys(locks):
            lock.release()
    return c, {p: recs[p] for p in paths}


def metrics_from_evaluate(out: dict) -> dict:
    """`msm4sr evaluate --json` output in core.explore.compare.stored_metrics' shape."""
    from core.explore.compare import stored_metrics
    flat = {}
    for part in ("valid", "test"):
        for m, v in (out.get(part) or {}).items():
            flat[f"{part}/{m}"] = v
    cold = out.get("cold") or {}
    for who in ("model", "popularity"):
        for m, v in (cold.get(who) or {}).items():
            flat[f"cold/{who}/{m}"] = v
    return stored_metrics({"metrics": flat})


class CompareDialog(QDialog):
    compared = Signal(object)            # the Comparison now shown
    evaluated = Signal(str, dict)        # model path, metrics

    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Compare models")
        self.resize(1100, 640)
        self.session = session
        self.comparison = None
        self.paths: list[str] = []                # the compared models, in column order
        self.metrics: dict[str, dict] = {}        # path -> stored_metrics shape
        self._loaded: dict[str, object] = {}
        self.process: QProcess | None = None
        self._eval_path: str | None = None
        self.extra: list[str] = []                # model folders added with "Add model folder…"

        self.models = QListWidget()
        self.models.setMaximumHeight(80)
        self.models.setToolTip("Tick two or three models")
        self.add_folder = QPushButton("Add model folder…")
        self.k = QSpinBox(minimum=1, maximum=100, value=10, prefix="top ")
        self.run_button = QPushButton("Compare")
        self.evaluate_button = QPushButton("Evaluate")
        self.evaluate_button.setToolTip("Run `msm4sr evaluate` in the background for the chosen model "
                                        "(the highlighted row of the metrics table)")
        self.status = QLabel(wordWrap=True)
        self.overlap = QLabel(wordWrap=True)
        self.overlap.setTextFormat(Qt.RichText)
        self.side = QTableWidget()
        self.side.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.side.setWordWrap(False)
        self.side.verticalHeader().setDefaultSectionSize(24)
        self.table = QTableWidget(0, len(HEADERS))
        self.table.setHorizontalHeaderLabels(list(HEADERS))
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setMaximumHeight(140)

        row = QHBoxLayout()
        row.addWidget(self.add_folder)
        row.addWidget(self.k)
        row.addWidget(self.run_button)
        row.addStretch(1)
        row.addWidget(self.evaluate_button)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("<b>Models</b> (tick two or three; the first ticked is the reference "
                             "for rank changes)"))
        lay.addWidget(self.models)
        lay.addLayout(row)
        lay.addWidget(self.status)
        lay.addWidget(self.overlap)
        lay.addWidget(self.side, 1)
        lay.addWidget(QLabel("<b>Stored metrics</b> (full ranking; — = not evaluated)"))
        lay.addWidget(self.table)

        self.add_folder.clicked.connect(self._choose_folder)
        self.run_button.clicked.connect(self.run)
        self.evaluate_button.clicked.connect(lambda: self.evaluate(self.chosen_metrics_row()))
        self.models.itemChanged.connect(lambda _it: self._fill_metrics())
        if session.recommender is not None and session.model_path is not None:
            self._loaded[str(session.model_path)] = session.recommender
        self.fill_models()

    # ---- the models ----------------------------------------------------------------
    def fill_models(self, extra=()) -> None:
        """The list of models: the workspace's, and folders added here (kept)."""
        ticked = set(self.ticked()) | {str(p) for p in extra}
        self.extra += [str(p) for p in extra if str(p) not in self.extra]
        extra = self.extra
        self.models.blockSignals(True)
        self.models.clear()
        if self.session.ws_path is not None:
            for n, p in enumerate(model_folders(self.session.ws_path, self.session.model_path)
                                  + [Path(e) for e in extra]):
                if any(self.models.item(r).data(PATH_ROLE) == str(p) for r in range(self.models.count())):
                    continue
                it = QListWidgetItem(f"{p.name}    {p}")
                it.setData(PATH_ROLE, str(p))
                it.setFlags(it.flags() | Qt.ItemIsUserCheckable)
                on = str(p) in ticked or (not ticked and n < 2)
                it.setCheckState(Qt.Checked if on else Qt.Unchecked)
                self.models.addItem(it)
        self.models.blockSignals(False)
        self._fill_metrics()

    def ticked(self) -> list[str]:
        return [self.models.item(r).data(PATH_ROLE) for r in range(self.models.count())
                if self.models.item(r).checkState() == Qt.Checked]

    def set_ticked(self, paths) -> None:
        want = [str(p) for p in paths]
        self.fill_models(extra=[p for p in want if p not in self.ticked()])   # folders from elsewhere
        for r in range(self.models.count()):
            it = self.models.item(r)
            it.setCheckState(Qt.Checked if it.data(PATH_ROLE) in want else Qt.Unchecked)

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Model folder", str(self.session.ws_path or ""))
        if path:
            if not (Path(path) / "manifest.json").is_file():
                self.status.setText(f"{path}: no manifest.json, not a model folder")
                return
            self.fill_models(extra=[path])

    # ---- comparing --------------------------------------------------------------------
    def run(self) -> None:
        paths, seq = self.ticked(), list(self.session.sequence)
        if not 2 <= len(paths) <= 3:
            self.status.setText(f"Tick two or three models ({len(paths)} ticked).")
            return
        if not seq:
            self.status.setText("The sequence is empty: add items to compare what the models recommend.")
            return
        self.status.setText("comparing… (models not loaded yet are loaded first)")
        self.run_button.setEnabled(False)
        loaded = {p: r for p, r in self._loaded.items() if p in paths}
        run_for(self, compare_models, paths, self.session.ws_path, seq, self.k.value(), loaded,
                on_done=lambda v: self._compared(paths, v), on_error=lambda exc, tb: self._failed(exc))

    def _failed(self, exc) -> None:
        self.run_button.setEnabled(True)
        self.status.setText(f"Could not compare: {exc}")

    def _compared(self, paths, value) -> None:
        c, recs = value
        self.run_button.setEnabled(True)
        self._loaded.update(recs)
        self.comparison, self.paths = c, list(paths)
        for p, n in zip(paths, c.models):
            self.metrics.setdefault(p, c.metrics[n])
        self._fill_side(c)
        self._fill_metrics()
        self.status.setText(f"{len(c.models)} models, top {c.k}, for the {len(c.sequence)}-item sequence; "
                            "shaded: in every model's top-k; ▲/▼: ranked higher/lower than by "
                            f"{c.models[0]}; only here: not in {c.models[0]}'s top-{c.k}")
        self.compared.emit(c)

    def _fill_side(self, c) -> None:
        ranks = {r["item"]: r for r in c.rows}
        self.side.clear()
        self.side.setColumnCount(len(c.models))
        self.side.setRowCount(c.k)
        self.side.setHorizontalHeaderLabels(c.models)
        for col, name in enumerate(c.models):
            for r, (item, score) in enumerate(c.top[name]):
                info = ranks[item]
                text = f"{r + 1}. {info['title'] or item}"
                change = info["rank_change"].get(name) if col > 0 else None
                if col > 0:
                    if info["ranks"][c.models[0]] is None:
                        text += "   only here"
                    elif change:
                        text += f"   {'▲' if change > 0 else '▼'}{abs(change)}"
                cell = QTableWidgetItem(text)
                cell.setData(PATH_ROLE, item)
                cell.setToolTip(f"{info['title']}\nid {item}\nscore {score:.4f}\nranks: " + ", ".join(
                    f"{m} {'—' if v is None else v}" for m, v in info["ranks"].items()))
                if info["in_all"]:
                    cell.setBackground(QBrush(IN_ALL))
                self.side.setItem(r, col, cell)
        self.side.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.overlap.setText("overlap of the top-%d: " % c.k + " · ".join(
            f"<b>{k.replace('|', ' ∩ ')}</b> {v}" for k, v in c.overlap.items()))

    def marks(self, col: int) -> list[str]:
        """The rank marks shown in a column ("▲2", "▼1", "only here" or ""), top to bottom."""
        out = []
        for r in range(self.side.rowCount()):
            cell = self.side.item(r, col)
            text = cell.text() if cell else ""
            out.append(text.rsplit("   ", 1)[1] if "   " in text else "")
        return out

    # ---- metrics ----------------------------------------------------------------------
    def _metrics_of(self, path: str) -> dict:
        if path not in self.metrics:
            from core.explore.compare import stored_metrics
            from core.manifest import read_manifest
            try:
                _, manifest = read_manifest(Path(path))
                self.metrics[path] = stored_metrics(manifest, path)
            except Exception as e:  # noqa: BLE001 - a bad manifest is a row saying so
                self.metrics[path] = {"error": str(e)}
        return self.metrics[path]

    def _fill_metrics(self) -> None:
        paths = self.ticked()
        self.table.setRowCount(len(paths))
        for r, p in enumerate(paths):
            m = self._metrics_of(p)
            name = QTableWidgetItem(Path(p).name + ("" if m.get("evaluated") else "  (not evaluated)"))
            name.setData(PATH_ROLE, p)
            name.setToolTip(m.get("error") or p)
            self.table.setItem(r, 0, name)
            for col, (part, metric) in enumerate(METRIC_COLUMNS, 1):
                v = (m.get(part) or {}).get(metric)
                self.table.setItem(r, col, QTableWidgetItem("—" if v is None else f"{v:.4f}"))
        self.table.resizeColumnsToContents()
        missing = [r for r, p in enumerate(paths) if not self._metrics_of(p).get("evaluated")]
        if missing:                 # the row Evaluate acts on: one without metrics
            self.table.selectRow(missing[0])
        elif paths and not self.table.selectedItems():
            self.table.selectRow(0)

    def chosen_metrics_row(self) -> str | None:
        items = self.table.selectedItems()
        return self.table.item(items[0].row(), 0).data(PATH_ROLE) if items else None

    def cell(self, path: str, header: str) -> str:
        for r in range(self.table.rowCount()):
            if self.table.item(r, 0).data(PATH_ROLE) == path:
                return self.table.item(r, HEADERS.index(header)).text()
        raise KeyError(path)

    def evaluate(self, path: str | None) -> None:
        """`msm4sr evaluate WS --model PATH --json` in the background."""
        if path is None or self.session.ws_path is None:
            return
        if self.process is not None:
            self.status.setText("an evaluation is already running")
            return
        self._eval_path = path
        proc = QProcess(self)
        proc.setProcessChannelMode(QProcess.SeparateChannels)
        proc.finished.connect(self._evaluated)
        self.process = proc
        self.evaluate_button.setEnabled(False)
        self.status.setText(f"evaluating {Path(path).name} in the background…")
        proc.start(sys.executable, ["-m", "core.cli", "evaluate", str(self.session.ws_path),
                                    "--model", path, "--json", "--device", "cpu"])

    def _evaluated(self, code, _status) -> None:
        proc, path = self.process, self._eval_path
        self.process = None
        self.evaluate_button.setEnabled(True)
        out = bytes(proc.readAllStandardOutput()).decode("utf-8", "replace")
        err = bytes(proc.readAllStandardError()).decode("utf-8", "replace").strip()
        proc.deleteLater()
        try:
            m = metrics_from_evaluate(json.loads(out)) if code == 0 else None
        except ValueError:
            m = None
        if m is None:
            self.status.setText(f"Evaluation of {Path(path).name} failed: "
                                f"{err.splitlines()[-1] if err else f'exit code {code}'}")
            return
        self.metrics[path] = m
        self._fill_metrics()
        self.status.setText(f"evaluated {Path(path).name}")
        self.evaluated.emit(path, m)

    def done(self, r) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.waitForFinished(2000)
        super().done(r)
