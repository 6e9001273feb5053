"""tests/procs.py: a spawned program that fails or hangs ends with a message naming the
command and the tail of its output, and a hung one is killed with its children."""
from __future__ import annotations

import os
import sys
import time

import pytest

import procs


def test_limit_scales_with_the_environment(monkeypatch):
    monkeypatch.delenv(procs.SCALE_ENV, raising=False)
    assert procs.limit(10) == 10 * procs.DEFAULT_SCALE
    monkeypatch.setenv(procs.SCALE_ENV, "0.5")
    assert procs.limit(10) == 5
    monkeypatch.setenv(procs.SCALE_ENV, "slow")
    with pytest.raises(ValueError, match="MSM4SR_TEST_TIMEOUT_SCALE='slow'"):
        procs.limit(10)


def test_a_failure_names_the_command_and_its_output():
    code = "import sys; print('out line'); print('err line', file=sys.stderr); sys.exit(3)"
    with pytest.raises(AssertionError) as e:
        procs.run([sys.executable, "-c", code], seconds=60)
    msg = str(e.value)
    assert "failed" in msg and "exit status 3" in msg and sys.executable in msg and "sys.exit(3)" in msg
    assert "err line" in msg and "out line" in msg
    r = procs.run([sys.executable, "-c", code], seconds=60, check=False)
    assert r.returncode == 3 and r.stdout == "out line\n"


def test_a_hang_is_killed_with_its_children(monkeypatch, tmp_path):
    monkeypatch.setenv(procs.SCALE_ENV, "1")
    pid_file = tmp_path / "child.pid"
    # the parent starts a child that would outlive it, says so, then hangs
    code = ("import subprocess, sys, time\n"
            "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
            f"open({str(pid_file)!r}, 'w').write(str(c.pid))\n"
            "print('started child', flush=True)\n"
            "time.sleep(600)\n")
    with pytest.raises(AssertionError) as e:
        procs.run([sys.executable, "-c", code], seconds=3)
    msg = str(e.value)
    assert "still running after 3 s" in msg and "killed" in msg and "started child" in msg
    child = int(pid_file.read_text())
    # the child got SIGKILL with the group; once reaped by init it is gone
    for _ in range(200):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        try:
            with open(f"/proc/{child}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":   # killed, waiting for its reaper
                    break
        except FileNotFoundError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"child {child} survived its group's kill")
