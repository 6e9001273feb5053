"""SIGKILL `msm4sr train` at random moments, resume, and end where an uninterrupted run ends.

Real subprocesses, real SIGKILL (no handler runs, nothing is flushed on the way out).
The trainer keeps a resumable state per completed epoch (written as a whole folder and
swapped in, see checkpoint.save_state) and re-seeds every epoch from (seed, stage, epoch),
so a resumed run repeats exactly what the uninterrupted one did: at most the epoch that
was running (or completed but not yet checkpointed) is redone, and the final weights and
metrics equal the uninterrupted run's (float noise only).
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from core import checkpoint
from core.config import load_config
from core.train import train
from model_fixtures import TINY, make_workspace
import procs
from seeds import seed_for

pytestmark = pytest.mark.realdata      # ../shared/datasets

REPO = Path(__file__).resolve().parents[1]
SETTINGS = dict(TINY, pretrain_epochs=4, finetune_epochs=4, patience=10)
KILLS = 2


def _cmd(ws: Path, run: str, resume: bool) -> list[str]:
    sets = [f"--set={k}={v}" for k, v in SETTINGS.items()]
    return [sys.executable, "-m", "core.cli", "train", str(ws), "--model", "msm4sr", "--run", run,
            "--progress-json"] + (["--resume"] if resume else sets)


def _log(ws: Path, run: str) -> list[dict]:
    path = ws / "runs" / run / "progress.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:  # a line cut by the kill: not an event
            pass
    return out


def _linear(e: dict) -> int:
    """Epoch number across stages: pretrain 1..P, then finetune P+1.."""
    return e["epoch"] + (SETTINGS["pretrain_epochs"] if e["stage"] == "finetune" else 0)


@pytest.fixture(scope="module")
def ws(ml1m, tmp_path_factory):
    w = make_workspace(tmp_path_factory.mktemp("kill") / "ws", ml1m, users=40)
    yield w
    w.close()


def test_training_survives_sigkill_and_resumes_to_the_same_model(ws):
    seed = seed_for("test_training_survives_sigkill_and_resumes_to_the_same_model")
    rnd = random.Random(seed)
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    # the epochs an uninterrupted run goes through (pre-training may stop early): what every
    # resume must go on with
    ref_events = []
    reference = train(ws, load_config(overrides=dict(SETTINGS, model="msm4sr")), "train", run="whole",
                      on_event=ref_events.append)
    ref_epochs = [_linear(e) for e in ref_events if e["event"] == "epoch"]
    run = "killed"
    survived, redone = 0, []
    for attempt in range(KILLS):
        before = [e for e in _log(ws.path, run) if e["event"] == "checkpoint"]
        # stderr to a file: a pipe nobody reads while the process runs can fill and block it
        err = open(ws.path.parent / f"stderr-{attempt}.txt", "w+")
        p = subprocess.Popen(_cmd(ws.path, run, resume=attempt > 0), cwd=REPO, env=env,
                             stdout=subprocess.DEVNULL, stderr=err, text=True)
        # wait for a new epoch checkpoint of this process (the first epoch's, the first time)
        deadline = time.time() + procs.limit(120)
        while p.poll() is None and time.time() < deadline:
            if len([e for e in _log(ws.path, run) if e["event"] == "checkpoint"]) > len(before):
                break
            time.sleep(0.02)
        if p.poll() is not None:
            err.seek(0)
            pytest.fail(f"finished before the kill (seed {seed}): {err.read()[-2000:]}")
        assert checkpoint.state_folder(ws.runs_dir / run / "pretrain" / "last") is not None
        time.sleep(rnd.uniform(0.0, 1.2))
        if p.poll() is not None:  # it ended in the meantime: this attempt kills nothing
            err.close()
            break
        p.send_signal(signal.SIGKILL)
        procs.wait(p, p.args, seconds=30)
        err.close()
        assert p.returncode == -signal.SIGKILL
        survived += 1
        # the last kill: resume to the end here (earlier ones: the next attempt resumes)
        if attempt == KILLS - 1:
            r = procs.run(_cmd(ws.path, run, resume=True), cwd=REPO, env=env, seconds=180)
            assert json.loads(r.stdout.splitlines()[-1])["event"] == "done"

    # every resumed process went on from the last epoch completed before it (redoing that one
    # when it was not checkpointed yet) through the epochs an uninterrupted run goes through
    log = _log(ws.path, run)
    starts = [k for k, e in enumerate(log) if e["event"] == "start"]
    assert len(starts) == survived + 1 >= 2
    for b, end in zip(starts[1:], starts[2:] + [len(log)]):
        done_before = max(_linear(e) for e in log[:b] if e["event"] == "epoch")
        went = [_linear(e) for e in log[b:end] if e["event"] == "epoch"]
        k = ref_epochs.index(done_before) + 1
        allowed = (ref_epochs[k:], ref_epochs[k - 1:])
        if end < len(log):       # killed again: the epochs it got through
            allowed = tuple(a[:len(went)] for a in allowed)
        assert went in allowed, (seed, done_before, went, ref_epochs)
        redone.append(int(went[:1] == [done_before]))

    a = load_file(str(ws.models_dir / run / "weights.safetensors"))
    b = load_file(str(reference.model_dir / "weights.safetensors"))
    worst = max(float((a[k] - b[k]).abs().max()) for k in b)
    done = [e for e in log if e["event"] == "done"][-1]
    print(f"\nseed {seed}: {survived} SIGKILLs survived, completed epochs redone {redone}, "
          f"max |weight difference| {worst:.1e}")
    assert a.keys() == b.keys() and worst < 1e-5
    for part in ("valid", "test"):
        for k in ("ndcg@10", "recall@10", "mrr@20"):
            assert done["metrics"][part][k] == pytest.approx(reference.metrics[part][k], abs=1e-6)
    # the model folder loads, and no torn state is left
    checkpoint.load_model(ws.models_dir / run)
    assert all(checkpoint.state_folder(ws.runs_dir / run / s / "last") for s in ("pretrain", "finetune"))
