"""The programs a test spawns: limits generous enough for a loaded machine, and a clear
message when one fails or runs past its limit.

A test gives `seconds`: ample on an unloaded 2-core machine (two to three times the usual
run). It is multiplied by MSM4SR_TEST_TIMEOUT_SCALE (default 4): a load average of 15 on
2 cores makes a run about 7 times slower, which 4 x (2 to 3) still covers. Set it higher
on a slower machine, lower to find a hang sooner. A limit is only there so that a hang
ends; no test asserts on time. On a timeout the whole process group is killed (torchrun's
workers too) and the message names the command, the limit and the tail of its output.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess

SCALE_ENV = "MSM4SR_TEST_TIMEOUT_SCALE"
DEFAULT_SCALE = 4.0
TAIL = 4000


def scale() -> float:
    raw = os.environ.get(SCALE_ENV, "")
    if not raw:
        return DEFAULT_SCALE
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{SCALE_ENV}={raw!r} is not a number") from None
    if value <= 0:
        raise ValueError(f"{SCALE_ENV}={raw!r} must be above 0")
    return value


def limit(seconds: float) -> float:
    """The wall-clock limit for something that takes up to `seconds` on a busy machine."""
    return seconds * scale()


def _text(data) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def describe(cmd, returncode, stdout, stderr, why: str) -> str:
    out, err = _text(stdout), _text(stderr)
    parts = [f"{why}: {shlex.join(str(c) for c in cmd)}"]
    if returncode is not None:
        parts.append(f"exit status {returncode}")
    parts.append(f"--- stderr (last {TAIL} chars) ---\n{err[-TAIL:]}" if err else "(no stderr)")
    parts.append(f"--- stdout (last {TAIL} chars) ---\n{out[-TAIL:]}" if out else "(no stdout)")
    return "\n".join(parts)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process and everything it started (it runs in its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run(cmd, *, seconds: float, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run with text output captured, limit(seconds), the whole group killed on a
    timeout, and an AssertionError naming the command and its output's tail on a timeout or
    (check=True) a non-zero exit."""
    kwargs.setdefault("text", True)
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    allowed = limit(seconds)
    proc = subprocess.Popen(cmd, start_new_session=True, **kwargs)
    try:
        out, err = proc.communicate(timeout=allowed)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        raise AssertionError(describe(cmd, None, out, err, f"still running after {allowed:.0f} s "
                                      f"({seconds} s x {SCALE_ENV}={scale():g}); killed")) from None
    except BaseException:
        kill_group(proc)
        proc.wait()
        raise
    finally:
        if proc.poll() is None:
            kill_group(proc)
    # torchrun's workers may outlive a launcher that exited
    kill_group(proc)
    r = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if check and r.returncode != 0:
        raise AssertionError(describe(cmd, r.returncode, out, err, "failed"))
    return r


def wait(proc: subprocess.Popen, cmd, *, seconds: float) -> int:
    """proc.wait within limit(seconds); on a timeout kill its group and say which command hung."""
    allowed = limit(seconds)
    try:
        return proc.wait(timeout=allowed)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        proc.wait()
        raise AssertionError(describe(cmd, None, None, None,
                                      f"still running after {allowed:.0f} s; killed")) from None
