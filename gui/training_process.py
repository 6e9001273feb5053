"""The training panel's hold on its process: pause and resume (SIGSTOP/SIGCONT), cancel
(SIGTERM: the trainer stops after its current step and keeps the last completed epoch's
resumable state), Stop now (SIGKILL while it stops) and how the process ended. A mixin of
TrainingPanel, which owns the state and the widgets it uses."""
from __future__ import annotations

import os
import signal
import sys
import time

from PySide6.QtCore import QProcess


class ProcessControl:
    def toggle_pause(self) -> None:
        if self.proc is None or self.state not in (self.RUNNING, self.PAUSED):
            return
        pid = int(self.proc.processId())
        if pid <= 0:
            return
        if self.state == self.RUNNING:
            os.kill(pid, signal.SIGSTOP)
            self._set_state(self.PAUSED)
            self.status.setText("Paused. Resume to continue from where it stopped.")
        else:
            os.kill(pid, signal.SIGCONT)
            self._set_state(self.RUNNING)
            self.status.setText("Running…")

    def cancel(self) -> None:
        """SIGTERM: the trainer stops after its current step, keeps the resumable state of the
        last completed epoch, and exits. A second press while it stops kills it at once (that
        state is already on disk)."""
        if self.proc is None:
            return
        if self.state == self.STOPPING:
            self._stderr.append("stopped at once (Stop now); the last completed epoch's state is kept")
            self._kill_now = True
            self.proc.kill()
            return
        if self.state not in (self.RUNNING, self.PAUSED):
            return
        pid = int(self.proc.processId())
        was_paused = self.state == self.PAUSED
        self._set_state(self.STOPPING)
        self._t_stop = time.monotonic()
        self._stop_tick.start()
        self._show_stopping()
        self.proc.terminate()
        if was_paused and pid > 0:
            os.kill(pid, signal.SIGCONT)      # a stopped process cannot handle SIGTERM
        self._kill_timer.start()

    def shutdown(self, wait_ms: int = 5000) -> None:
        """For the main window's close: stop a run (it keeps a resumable checkpoint)."""
        if self.proc is not None and self.state != self.IDLE:
            self.cancel()
            if not self.proc.waitForFinished(wait_ms):
                self.proc.kill()
                self.proc.waitForFinished(1000)

    def _show_stopping(self) -> None:
        waited = int(time.monotonic() - getattr(self, "_t_stop", time.monotonic()))
        step = f" (a step takes about {self._step_s:.0f} s)" if self._step_s and self._step_s >= 1 else ""
        self.status.setText(f"Stopping after the current step{step}, then keeping a resumable checkpoint… "
                            f"{waited} s. Press “Stop now” to end it at once.")
        self.progress.setFormat("stopping…")

    def _kill(self) -> None:
        if self.proc is not None and self.state == self.STOPPING:
            self._stderr.append("msm4sr did not stop within 60 s of SIGTERM; killed")
            self.proc.kill()

    def _proc_error(self, err) -> None:
        if err == QProcess.ProcessError.FailedToStart:
            self.error_text = f"could not start {sys.executable}: {self.proc.errorString()}"
            self._end("error")

    def _finished(self, code: int, status) -> None:
        self._read_stdout()
        if self._buf.strip():                    # a last line without a newline
            self._buf += b"\n"
            self._read_stdout()
        self._read_stderr()
        crashed = status == QProcess.ExitStatus.CrashExit
        if self.outcome == "done" and code == 0:
            self._end("done")
        elif self.outcome == "cancelled" or (self.state == self.STOPPING and self.outcome != "error"
                                             and (self._kill_now or (not crashed and code == 0))):
            self._end("cancelled")      # killed by Stop now: the last completed epoch's state stays
        else:
            if not self.error_text:
                last = self._stderr[-1] if self._stderr else ""
                last = last.split("error:", 1)[1].strip() if "error:" in last else last
                how = "the process crashed or was killed" if crashed else f"exit code {code}"
                self.error_text = f"{last} ({how})" if last else how
            self._end("error")
