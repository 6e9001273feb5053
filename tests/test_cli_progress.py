"""Long commands are never silent off a terminal: `import`, `features` and `train` run as
real subprocesses whose stderr is a pipe print plain progress lines (no bar, no carriage
returns). MSM4SR_PROGRESS_SECONDS=0 makes every update a line, so nothing waits 10 s."""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import StudioError
from core.progress import LineProgress, line_interval
from core.workspace import Item, Workspace
from model_fixtures import TINY, make_workspace, read_ml1m

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "MSM4SR_PROGRESS_SECONDS": "0"}


def _run(args: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "core.cli", *args], cwd=REPO, env=ENV,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "\r" not in r.stderr      # lines, not a redrawn bar
    return r


def _counts(stderr: str, stage: str) -> list[tuple[int, int]]:
    pat = re.compile(rf"^{re.escape(stage)}: ([\d,]+)/([\d,]+) \(\d+%\), \d+s", re.M)
    return [(int(a.replace(",", "")), int(b.replace(",", ""))) for a, b in pat.findall(stderr)]


def test_features_print_a_line_per_batch_when_stderr_is_a_pipe(ml1m, tmp_path):
    ws = Workspace.create(tmp_path / "ws")
    with open(ml1m / "movies.dat", encoding="latin-1") as f:
        rows = [line.rstrip("\n").split("::") for line in list(f)[:40]]
    with ws.transaction() as db:
        ws.upsert_items([Item(id=m, title=t, categories=g) for m, t, g in rows], db)
    ws.close()
    r = _run(["features", str(tmp_path / "ws"), "--keywords-from", "none", "--batch-size", "8"])
    counts = _counts(r.stderr, "text")
    assert counts[0] == (0, 40) and counts[-1] == (40, 40)
    assert [d for d, _ in counts] == sorted(d for d, _ in counts) and len(counts) >= 6
    assert "text features   40 items" in r.stdout


def test_train_prints_step_lines_when_stderr_is_a_pipe(ml1m, tmp_path):
    make_workspace(tmp_path / "ws", ml1m, users=40, image=False).close()
    sets = [f"--set={k}={v}" for k, v in TINY.items()]
    r = _run(["pretrain", str(tmp_path / "ws"), "--run", "lines", "--epochs", "2", *sets])
    for epoch in (1, 2):
        counts = _counts(r.stderr, f"pretrain epoch {epoch} step")
        assert counts and counts[-1][0] == counts[-1][1], r.stderr[-2000:]
    assert re.search(r"^pretrain epoch 1 step: .*, loss \d+\.\d{4}, \d+ items/s$", r.stderr, re.M)
    assert "pretrain epoch 2: " in r.stderr      # the epoch summary is still printed


def test_import_prints_its_stages_when_stderr_is_a_pipe(ml1m, tmp_path):
    rows, _ = read_ml1m(ml1m, 30)
    inter = tmp_path / "inter.tsv"
    inter.write_text("user\titem\ttimestamp\n" + "".join(f"{u}\t{i}\t{t}\n" for u, i, t in rows))
    r = _run(["import", str(tmp_path / "ws"), "--format", "tsv", "--interactions", str(inter)])
    process = _counts(r.stderr, "process")
    assert process[0] == (0, 3) and process[-1] == (3, 3)
    assert _counts(r.stderr, "write")[-1][0] > 0


def test_a_slow_stage_is_repeated_by_the_ticker_until_it_moves():
    out = io.StringIO()
    lines = LineProgress(interval=0.05, stream=out)
    try:
        lines("encode", 1, 4)
        deadline = time.monotonic() + 60        # a bound against hanging, not a timing check
        while "(still working)" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        lines.close()
    first, *rest = out.getvalue().splitlines()
    assert first.startswith("encode: 1/4 (25%), ")
    assert rest and all(x.startswith("encode: 1/4 (25%), ") and x.endswith("(still working)")
                        for x in rest)
    after = out.getvalue()
    time.sleep(0.2)
    assert out.getvalue() == after                # closed: the ticker is gone


def test_a_bad_interval_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("MSM4SR_PROGRESS_SECONDS", "soon")
    with pytest.raises(StudioError, match="MSM4SR_PROGRESS_SECONDS='soon'"):
        line_interval()
    monkeypatch.setenv("MSM4SR_PROGRESS_SECONDS", "2.5")
    assert line_interval() == 2.5
