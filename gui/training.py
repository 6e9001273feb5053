"""Background training: runs the `msm4sr` command line in a QProcess and plots its
JSON progress lines live.

The process is the same command a user would type (shown in the panel), so a run
started here can be resumed from a terminal and the other way round. Pause and
resume are SIGSTOP/SIGCONT; Cancel is SIGTERM, on which the trainer saves a
resumable checkpoint before it exits.
"""
from __future__ import annotations

import shlex
import sys
import time
from collections import deque
from pathlib import Path

from PySide6.QtCore import QProcess, Qt, QTimer, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit, QProgressBar,
                               QPushButton, QSplitter, QVBoxLayout, QWidget)

from gui.model_calls import load_recommender
from gui.training_form import TrainingForm
from gui.training_process import ProcessControl
from gui.training_plots import TrainingPlots
from gui.training_runs import (child_environment, fmt_seconds, html, latest_run, parse_lines,
                               peak_memory_mb, resume_check, run_history, summary)

__all__ = ["TrainingPanel", "latest_run", "summary", "fmt_seconds"]
from gui.wording import for_the_app
from gui.workers import run_task

REPO = Path(__file__).resolve().parents[1]

STDERR_LINES = 40


class TrainingPanel(ProcessControl, QWidget):
    runStarted = Signal(list)           # the argument list
    runFinished = Signal(str, str)      # outcome ('done'|'cancelled'|'error'), checkpoint path or message
    modelLoaded = Signal(str)

    IDLE, RUNNING, PAUSED, STOPPING = "idle", "running", "paused", "stopping"

    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.state = self.IDLE
        self.last_run: str | None = None        # the run "Resume last run" continues
        self.cli_module = "core.cli"
        self.max_handler_ms = 0.0               # longest GUI-thread CPU time spent on the run's output
        self.proc: QProcess | None = None
        self.events: list[dict] = []
        self.checkpoint: str | None = None      # from the last done/cancelled/checkpoint event
        self.outcome: str | None = None
        self.error_text: str | None = None
        self.peak_mb = 0.0
        self._buf = b""
        self._stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self._kill_timer = QTimer(self, singleShot=True, interval=60_000)
        self._kill_timer.timeout.connect(self._kill)
        self._stop_tick = QTimer(self, interval=1000)   # the "Stopping… N s" count
        self._stop_tick.timeout.connect(self._show_stopping)
        self._step_s: float | None = None               # seconds between the last step events
        self._last_step: tuple[float, int] | None = None
        self._kill_now = False
        self._plot_timer = QTimer(self, interval=150)   # redraw at most ~7 times a second
        self._plot_timer.timeout.connect(self._redraw)
        self._build_ui()
        session.workspaceChanged.connect(self._workspace_changed)
        self._update_buttons()

    # ---- layout ------------------------------------------------------------
    def _build_ui(self) -> None:
        self.form = TrainingForm(self.session)
        self.start_btn = QPushButton("Start")
        self.pause_btn = QPushButton("Pause")
        self.cancel_btn = QPushButton("Cancel")
        self.load_btn = QPushButton("Load new model")
        self.load_btn.hide()
        self.start_btn.clicked.connect(self.start)
        self.pause_btn.clicked.connect(self.toggle_pause)
        self.cancel_btn.clicked.connect(self.cancel)
        self.load_btn.clicked.connect(self.load_new_model)
        buttons = QHBoxLayout()
        for b in (self.start_btn, self.pause_btn, self.cancel_btn, self.load_btn):
            buttons.addWidget(b)
        buttons.addStretch(1)

        self.progress = QProgressBar(minimum=0, maximum=1000, value=0, textVisible=True)
        self.progress.setFormat("idle")
        self.status = QLabel("Idle.", wordWrap=True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # room for two wrapped lines: the splitter above does not pass height-for-width down
        self.status.setMinimumHeight(self.status.fontMetrics().lineSpacing() * 2 + 4)
        self.status.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.command_line = QLineEdit(readOnly=True)
        self.command_line.setFont(QFont("monospace"))
        self.command_line.setToolTip("The same run from a terminal")

        self.plots = plots = TrainingPlots()
        self.loss_plot, self.metric_plot = plots.loss_plot, plots.metric_plot
        self._loss, self._metric = plots.loss_data, plots.metric_data     # curve name -> (xs, ys)

        self.log = QPlainTextEdit(readOnly=True, maximumBlockCount=500)
        self.log.setFont(QFont("monospace"))
        self.log.setMaximumHeight(90)

        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addLayout(buttons)
        rl.addWidget(self.progress)
        rl.addWidget(self.status)
        rl.addWidget(plots, 1)
        rl.addWidget(self.command_line)
        rl.addWidget(self.log)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.form)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(split)


    # ---- the command line ----------------------------------------------------
    def arguments(self) -> list[str]:
        """`python -m core.cli ...` arguments for the form's settings."""
        return self.form.arguments(self.last_run)

    # ---- running -------------------------------------------------------------
    def start(self) -> bool:
        if self.state != self.IDLE:
            return False
        if self.session.ws_path is None:
            self.session.warn("Open a workspace before training.")
            return False
        problem = self.form.memory_problem()
        if problem:
            self.status.setText(f"<b style='color:#c00'>Not started:</b> {html(problem)}")
            self.session.warn(f"Training not started: {problem}")
            return False
        args = ["-m", self.cli_module] + self.arguments()
        resumed = None
        if "--resume" in args:
            run = args[args.index("--run") + 1] if "--run" in args else None
            problem, note = resume_check(self.session.ws_path, run, args)
            if problem:
                self.status.setText(f"<b style='color:#c00'>Cannot resume:</b> {html(problem)}")
                self.session.warn(f"Cannot resume: {problem}")
                return False
            resumed = run
        self._reset_run()
        if resumed:
            # the curves go on from the run's completed epochs instead of restarting at 1
            self.plots.add_history(run_history(Path(self.session.ws_path) / "runs" / resumed))
            self.plots.redraw()
        self.command_line.setText("msm4sr " + shlex.join(args[2:]))
        self.command_line.setCursorPosition(0)
        proc = QProcess(self)
        proc.setProcessEnvironment(child_environment(REPO))
        proc.setWorkingDirectory(str(REPO))
        proc.readyReadStandardOutput.connect(self._read_stdout)
        proc.readyReadStandardError.connect(self._read_stderr)
        proc.finished.connect(self._finished)
        proc.errorOccurred.connect(self._proc_error)
        self.proc = proc
        self._set_state(self.RUNNING)
        self.status.setText(f"Resuming run {resumed}{note}…" if resumed else "Starting…")
        self.progress.setFormat("starting…")
        self._t_start = time.monotonic()
        proc.start(sys.executable, args)
        self._plot_timer.start()
        self.runStarted.emit(args)
        return True

    # ---- reading the process -----------------------------------------------
    def _timed(self, fn) -> None:
        # CPU time of this thread, not wall time: on a busy machine the wall clock also
        # counts the time the OS gave to other processes (the trainer among them)
        t = time.thread_time()
        fn()
        self.max_handler_ms = max(self.max_handler_ms, (time.thread_time() - t) * 1000)

    def _read_stdout(self) -> None:
        self._timed(self._read_stdout_now)

    def _read_stdout_now(self) -> None:
        self._buf += bytes(self.proc.readAllStandardOutput())
        *lines, self._buf = self._buf.split(b"\n")   # keep a partial last line for later
        for ev in parse_lines(lines):
            if isinstance(ev, dict):
                self._event(ev)
            else:
                self.log.appendPlainText(ev)         # plain output: shown, not parsed

    def _read_stderr(self) -> None:
        text = bytes(self.proc.readAllStandardError()).decode("utf-8", "replace")
        for line in text.splitlines():
            if line.strip():
                self._stderr.append(line.rstrip())

    def _event(self, ev: dict) -> None:
        self.events.append(ev)
        kind = ev.get("event")
        if kind == "step":
            stage = str(ev.get("stage", ""))
            self.plots.add_step(ev)
            step, steps = ev.get("step"), ev.get("steps")
            now = time.monotonic()
            if self._last_step is not None and step and step > self._last_step[1]:
                self._step_s = (now - self._last_step[0]) / (step - self._last_step[1])
            self._last_step = (now, int(step or 0))
            if self.proc is not None:
                peak = peak_memory_mb(self.proc.processId())
                self.peak_mb = max(self.peak_mb, peak or 0.0)
            if self.state == self.STOPPING:      # the run is ending: keep saying so
                return
            if steps:
                self.progress.setValue(int(1000 * min(1.0, float(step) / float(steps))))
                self.progress.setFormat(f"{stage} epoch {ev.get('epoch')} · step {step}/{steps}")
            rate = ev.get("items_per_s")
            self.status.setText(
                f"{'Paused' if self.state == self.PAUSED else 'Running'}: {stage}, epoch {ev.get('epoch')}, "
                f"loss {float(ev.get('loss', float('nan'))):.4f}"
                + (f", {rate:.0f} items/s" if rate else "")
                + (f", memory {self.peak_mb / 1024:.1f} GB" if self.peak_mb else "")
                + f", ETA {fmt_seconds(ev.get('eta_s'))}")
        elif kind == "epoch":
            stage = str(ev.get("stage", ""))
            self.plots.add_epoch(ev)
            self._last_step = None
            valid = ", ".join(f"{k} {v:.4f}" for k, v in (ev.get("valid") or {}).items() if v is not None)
            self.log.appendPlainText(f"{stage} epoch {ev.get('epoch')}: {valid or 'no validation'}"
                                     f" ({fmt_seconds(ev.get('seconds'))})")
        elif kind == "checkpoint":
            self.checkpoint = ev.get("path") or self.checkpoint
        elif kind == "done":
            self.outcome = "done"
            self.checkpoint = ev.get("checkpoint") or self.checkpoint
            self.final_metrics = ev.get("metrics") or {}
            self.log.appendPlainText(f"done: {summary(self.final_metrics)}")
        elif kind == "cancelled":
            self.outcome = "cancelled"
            self.checkpoint = ev.get("checkpoint") or self.checkpoint
            self.log.appendPlainText(f"cancelled: resumable state in {self._rel(self.checkpoint)}")
        elif kind == "error":
            self.outcome = "error"
            self.error_text = for_the_app(str(ev.get("message", "unknown error")))
        elif kind == "start":
            self.last_run = ev.get("run") or self.last_run
            if self.state != self.STOPPING:
                self.status.setText("Running…")
            self.log.appendPlainText("started" + (f": run {ev['run']}" if ev.get("run") else ""))

    def _redraw(self) -> None:
        self._timed(self._redraw_now)

    def _redraw_now(self) -> None:
        self.plots.redraw()

    def _end(self, outcome: str) -> None:
        if self.state == self.IDLE:
            return
        self._kill_timer.stop()
        self._stop_tick.stop()
        self._plot_timer.stop()
        self.plots.dirty = True
        self._redraw()
        self.outcome = outcome
        took = fmt_seconds(time.monotonic() - getattr(self, "_t_start", time.monotonic()))
        if outcome == "done":
            self.progress.setValue(1000)
            self.progress.setFormat("done")
            mem = f" Peak memory {self.peak_mb / 1024:.1f} GB." if self.peak_mb else ""
            self.status.setText(f"Finished in {took}: {summary(self.final_metrics)}.{mem} "
                                f"New model: {self._rel(self.checkpoint)}")
            self.load_btn.setVisible(bool(self.checkpoint))
            self.session.info("Training finished. Use “Load new model” in the Training panel to use it.")
            detail = self.checkpoint or ""
        elif outcome == "cancelled":
            self.progress.setFormat("cancelled")
            where = self._rel(self.checkpoint) if self.checkpoint else "the run folder"
            self.status.setText(f"Cancelled after {took}. Resumable checkpoint: {where} "
                                "(tick “Resume last run” to continue).")
            self.session.info("Training cancelled; a resumable checkpoint was kept.")
            detail = self.checkpoint or ""
        else:
            tail = "\n".join(self._stderr)
            self.progress.setFormat("failed")
            self.status.setText(f"<b style='color:#c00'>Training failed:</b> {html(self.error_text)}")
            if tail:
                self.log.appendPlainText("--- stderr (last lines) ---\n" + tail)
            self.session.error(f"Training failed: {self.error_text}")
            detail = self.error_text or ""
        self.proc = None
        self._set_state(self.IDLE)
        self.runFinished.emit(outcome, detail)

    def _rel(self, path) -> str:
        """A path inside the workspace, shown relative to it (short enough to read)."""
        try:
            return str(Path(path).relative_to(Path(self.session.ws_path).resolve()))
        except (TypeError, ValueError):
            return str(path)

    def _reset_run(self) -> None:
        self.events, self.checkpoint, self.outcome, self.error_text = [], None, None, None
        self.final_metrics: dict = {}
        self._buf = b""
        self._stderr.clear()
        self.max_handler_ms = 0.0
        self._step_s, self._last_step, self._kill_now = None, None, False
        self.peak_mb = 0.0                      # the training process's peak resident memory
        self.plots.clear()
        self.log.clear()
        self.progress.setValue(0)
        self.load_btn.hide()

    def _set_state(self, state: str) -> None:
        self.state = state
        self._update_buttons()

    def _workspace_changed(self) -> None:
        """Nothing of another workspace's run stays: its plots, errors, command line, result
        ("Load new model" would be refused for the other items) and "Resume last run"."""
        if self.state != self.IDLE:      # the window refuses to switch while a run is going
            return
        self.last_run = None
        self._reset_run()
        self.command_line.clear()
        self.progress.setFormat("idle")
        self.status.setText("Idle.")
        self.form.workspace_changed()
        self._update_buttons()

    def _update_buttons(self, *_) -> None:
        idle = self.state == self.IDLE
        self.start_btn.setEnabled(idle and self.session.ws_path is not None)
        self.pause_btn.setEnabled(self.state in (self.RUNNING, self.PAUSED))
        self.pause_btn.setText("Resume" if self.state == self.PAUSED else "Pause")
        # while it stops, Cancel becomes "Stop now": the user is never left with no control
        self.cancel_btn.setEnabled(self.state in (self.RUNNING, self.PAUSED, self.STOPPING))
        self.cancel_btn.setText("Stop now" if self.state == self.STOPPING else "Cancel")
        self.cancel_btn.setToolTip("End the process at once; the last completed epoch's state is kept"
                                   if self.state == self.STOPPING else
                                   "Stop after the current step, keeping a resumable checkpoint")
        if idle and self.session.ws_path is None:
            self.status.setText("Open a workspace to train a model on it.")

    # ---- loading the result ------------------------------------------------
    def load_new_model(self) -> None:
        if not self.checkpoint or self.session.ws_path is None:
            return
        path = self.checkpoint
        self.load_btn.setEnabled(False)
        self.status.setText(f"Loading {path}…")

        def done(rec):
            self.load_btn.setEnabled(True)
            self.load_btn.hide()
            self.session.set_recommender(rec, path)
            self.status.setText(f"Loaded the new model from {path}.")
            self.session.info(f"Loaded model {path}")
            self.modelLoaded.emit(path)

        def failed(exc, tb):
            self.load_btn.setEnabled(True)
            self.status.setText(f"<b style='color:#c00'>Could not load the new model:</b> {html(str(exc))}")
            self.session.error(f"Could not load {path}: {exc}")

        run_task(load_recommender, path, self.session.ws_path, on_done=done, on_error=failed)
