"""Data-parallel training: two real CPU processes (gloo) under torchrun against one process.

`python -m torch.distributed.run --standalone --nproc_per_node 2 -m core.cli -- train ...`
(--standalone: a local rendezvous on a free port). With the same global batch and seed the
two-process run must match one process: the per-row random draws (item drop, mixup swaps,
query positions) are drawn for the global batch on every rank, and the losses gather their
in-batch negatives from all ranks. Dropout masks are drawn per rank (seed + rank), so they
cannot equal one process's masks: dropout is set to 0 here, and what remains is float
summation order (gathered vs. local products, DDP's averaged gradients), compared with a
stated tolerance. The global batch (47) does not divide the windows evenly: shards differ
by a row and the last global batch (1 row) leaves rank 1 an empty shard.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from core.config import load_config
from core.train import train
import procs
from model_fixtures import TINY, make_workspace

REPO = Path(__file__).resolve().parents[1]
SETTINGS = dict(TINY, pretrain_batch=47, finetune_batch=47, dropout=0.0, attn_dropout=0.0,
                adaptor_dropout=0.0, pretrain_epochs=2, finetune_epochs=2, finetune_lr=1e-3)
WEIGHT_ATOL = 1e-4   # float summation order only (observed ~1e-5 after four epochs)
LOSS_RTOL = 1e-4


def _torchrun(ws: Path, run: str, nproc: int = 2) -> tuple[list[dict], subprocess.CompletedProcess]:
    sets = [f"--set={k}={v}" for k, v in SETTINGS.items()]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "core.cli", "--", "train", str(ws), "--model", "msm4sr", "--run", run,
           "--progress-json", *sets]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    r = procs.run(cmd, cwd=REPO, env=env, seconds=240)
    return [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")], r


@pytest.fixture(scope="module")
def ws(ml1m, tmp_path_factory):
    w = make_workspace(tmp_path_factory.mktemp("ddp") / "ws", ml1m, users=40)
    yield w
    w.close()


@pytest.mark.realdata
def test_two_processes_match_one_process(ws):
    events, r = _torchrun(ws.path, "ddp2")
    one_events = []
    one = train(ws, load_config(overrides=SETTINGS), "train", run="one", on_event=one_events.append)

    # only rank 0 reports and writes: one start, one done, one progress log
    kinds = [e["event"] for e in events]
    assert kinds.count("start") == 1 and kinds[-1] == "done", r.stderr[-2000:]
    log = (ws.runs_dir / "ddp2" / "progress.jsonl").read_text().splitlines()
    assert [json.loads(x)["event"] for x in log] == kinds
    assert events[-1]["metrics"]["test"]["cases"] == one.metrics["test"]["cases"] == 40

    # the loss goes down in both stages
    for stage in ("pretrain", "finetune"):
        losses = [e["loss"] for e in events if e["event"] == "step" and e["stage"] == stage]
        assert losses[-1] < losses[0], (stage, losses)

    # step losses: the global batch's loss, equal to one process's at the same steps
    ours = {(e["stage"], e["epoch"], e["step"]): e["loss"] for e in events if e["event"] == "step"}
    theirs = {(e["stage"], e["epoch"], e["step"]): e["loss"] for e in one_events if e["event"] == "step"}
    common = sorted(set(ours) & set(theirs))
    assert len(common) >= 4
    for k in common:
        assert ours[k] == pytest.approx(theirs[k], rel=LOSS_RTOL), k

    # the checkpoints: same tensors, equal within float summation noise
    a = load_file(str(ws.models_dir / "ddp2" / "weights.safetensors"))
    b = load_file(str(one.model_dir / "weights.safetensors"))
    assert a.keys() == b.keys()
    # Exception: the key part of each attention layer's qkv bias. Its true gradient is zero
    # (it adds the same q.b_k to every score of a softmax row), so what it receives is pure
    # float noise, which Adam normalises into steps of up to lr each: it drifts in any run
    # (one process included) and is compared only against that bound.
    diff = {k: (a[k].float() - b[k].float()).abs() for k in a}
    key_bias = {k: d.view(3, -1)[1].max() for k, d in diff.items() if k.endswith("qkv.bias")}
    for k in key_bias:
        diff[k] = diff[k].view(3, -1)[[0, 2]]
    worst = max(float(d.max()) for d in diff.values())
    print(f"\n2 processes vs 1: {len(a)} tensors, max |difference| {worst:.2e} "
          f"(key biases {max(map(float, key_bias.values())):.2e})")
    assert worst < WEIGHT_ATOL
    steps = sum({(e["stage"], e["epoch"]): e["steps"] for e in one_events if e["event"] == "step"}.values())
    assert all(float(v) <= 1e-3 * steps for v in key_bias.values())  # lr <= 1e-3 in both stages
    # sharded evaluation (each rank's metric sums, all-reduced) reports exactly what one process
    # computes for the same weights: ranks are integer counts, so only the float order of the
    # sums can differ (1e-12 relative; one case's rank moving changes a metric by ~1e-4)
    from core.cli_model import evaluate_checkpoint
    alone = evaluate_checkpoint(ws, ws.models_dir / "ddp2", device="cpu")
    for part in ("valid", "test"):
        got, want = events[-1]["metrics"][part], alone[part]
        assert set(got) == set(want) and got["cases"] == want["cases"] == 40
        for k in want:
            assert got[k] == pytest.approx(want[k], rel=1e-12, abs=1e-12), (part, k)
    m2 = json.loads((ws.models_dir / "ddp2" / "manifest.json").read_text())
    assert m2["stage"] == "finetune" and m2["use_ids"] is True
    assert not any(p.name.endswith((".tmp", ".new", ".old")) for p in (ws.runs_dir / "ddp2").rglob("*"))


def test_distributed_gather_and_reduce_in_two_processes(tmp_path):
    """The plumbing itself: uneven autograd all_gather (gradients reach their rank), all_reduce, shards."""
    script = tmp_path / "worker.py"
    script.write_text(
        "import json, os, sys, torch\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from core import distributed as dd\n"
        "dd.init('cpu')\n"
        "r, w = dd.rank(), dd.world_size()\n"
        "x = torch.full((r + 1, 2), float(r + 1), requires_grad=True)\n"   # rank 0: 1 row, rank 1: 2 rows
        "g = dd.all_gather(x)\n"
        "(g * torch.arange(1, len(g) + 1).unsqueeze(1)).sum().backward()\n"
        "s = dd.shard_of(5)\n"
        "out = {'rank': r, 'world': w, 'gathered': g.tolist(), 'grad': x.grad.tolist(),\n"
        "       'sum': dd.all_reduce_sum(torch.tensor([r + 1.0])).tolist(), 'shard': [s.start, s.stop],\n"
        "       'stop': dd.any_rank(r == 1), 'main': dd.is_main()}\n"
        "open(os.path.join(sys.argv[1], f'r{r}.json'), 'w').write(json.dumps(out))\n"
        "dd.barrier(); dd.cleanup()\n")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(script), str(tmp_path)], env=env, seconds=120)
    outs = [json.loads((tmp_path / f"r{k}.json").read_text()) for k in (0, 1)]
    for o in outs:
        assert o["world"] == 2 and o["gathered"] == [[1, 1], [2, 2], [2, 2]]
        assert o["sum"] == [3.0] and o["stop"] is True and o["main"] == (o["rank"] == 0)
    # each rank computes the same loss; the gradient of its rows is summed over both ranks
    assert outs[0]["grad"] == [[2.0, 2.0]]                      # row weight 1, from 2 ranks
    assert outs[1]["grad"] == [[4.0, 4.0], [6.0, 6.0]]          # row weights 2 and 3, x2
    assert [o["shard"] for o in outs] == [[0, 3], [3, 5]]
    # one process: everything is a no-op
    from core import distributed as dd
    t = torch.ones(2, 3)
    assert not dd.active() and dd.rank() == 0 and dd.world_size() == 1 and dd.all_gather(t) is t
    assert dd.shard_of(5) == dd.Shard(0, 5, 5)
