"""The trainer on real tiny runs: repeatability, progress events, resume, SIGTERM, ablations."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from core.config import load_config
from core.train import train
from model_fixtures import TINY, make_workspace

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ws(ml1m, tmp_path_factory):
    w = make_workspace(tmp_path_factory.mktemp("train") / "ws", ml1m, users=60)
    yield w
    w.close()


def _cfg(**kw):
    return load_config(overrides=dict(TINY, **kw))


def _weights(res):
    return load_file(str(res.model_dir / "weights.safetensors"))


@pytest.mark.realdata
def test_same_seed_same_weights_and_events(ws):
    events = []
    cfg = _cfg(model="msm4sr", pretrain_epochs=1, finetune_epochs=1)
    a = train(ws, cfg, "train", run="rep-a", on_event=events.append)
    b = train(ws, cfg, "train", run="rep-b")
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    c = train(ws, _cfg(model="msm4sr", pretrain_epochs=1, finetune_epochs=1, seed=7), "train", run="rep-c")
    assert not torch.equal(_weights(c)["id_emb.weight"], wa["id_emb.weight"])
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    assert {"step", "epoch", "checkpoint"} <= set(kinds)
    steps = [e for e in events if e["event"] == "step"]
    pre = [e for e in steps if e["stage"] == "pretrain"]
    fin = [e for e in steps if e["stage"] == "finetune"]
    assert set(pre[-1]["losses"]) == {"nip_text", "nip_image", "cmcl"} and set(fin[-1]["losses"]) == {"ce"}
    assert all(e["items_per_s"] > 0 and e["eta_s"] >= 0 and e["step"] <= e["steps"] for e in steps)
    ep = [e for e in events if e["event"] == "epoch"]
    assert [e["stage"] for e in ep] == ["pretrain", "finetune"]
    assert 0 <= ep[-1]["valid"]["ndcg@10"] <= 1
    done = events[-1]
    assert Path(done["checkpoint"]) == ws.models_dir / "rep-a"
    assert done["metrics"]["test"]["cases"] == 60
    # the run folder: config and a progress log that matches the events
    lines = (ws.runs_dir / "rep-a" / "progress.jsonl").read_text().splitlines()
    assert [json.loads(x)["event"] for x in lines] == kinds
    assert json.loads((ws.runs_dir / "rep-a" / "config.json").read_text())["hidden"] == 32


@pytest.mark.realdata
def test_training_lowers_the_loss(ws):
    events = []
    train(ws, _cfg(model="sasrec", finetune_epochs=4, sasrec_lr=3e-3), "train", run="learn",
          on_event=events.append)
    losses = [e["loss"] for e in events if e["event"] == "step"]
    assert losses[-1] < losses[0] - 0.3


@pytest.mark.realdata
def test_resume_after_interruption_matches_an_uninterrupted_run(ws):
    cfg = _cfg(model="sasrec", finetune_epochs=3, patience=10)
    full = train(ws, cfg, "train", run="whole")

    class Boom(Exception):
        pass

    def explode(e):
        if e["event"] == "checkpoint":
            raise Boom()

    with pytest.raises(Boom):
        train(ws, cfg, "train", run="cut", on_event=explode)
    state = json.loads((ws.runs_dir / "cut" / "finetune" / "last" / "state.json").read_text())
    assert state["epoch"] == 1
    resumed = train(ws, cfg, "train", run="cut", resume=True)
    assert resumed.epochs == full.epochs == {"finetune": 3}
    wa, wb = _weights(full), _weights(resumed)
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
    assert resumed.metrics["test"]["ndcg@10"] == pytest.approx(full.metrics["test"]["ndcg@10"], abs=1e-6)


@pytest.fixture(scope="module")
def msm4sr_whole(ws):
    """One uninterrupted MSM4SR run (both stages) that the interrupted ones must equal."""
    cfg = _cfg(model="msm4sr", pretrain_epochs=2, finetune_epochs=2, pretrain_patience=10, patience=10)
    return cfg, train(ws, cfg, "train", run="msm-whole")


@pytest.mark.realdata
@pytest.mark.parametrize("cut", ["mid-pretraining", "hand-over"])
def test_msm4sr_resume_matches_an_uninterrupted_run(ws, msm4sr_whole, cut):
    """Interrupted after the first pre-training epoch, or in the first fine-tuning step (pre-training
    done, fine-tuning not checkpointed yet): the resumed run ends where the whole one ends."""
    cfg, full = msm4sr_whole
    run = f"msm-cut-{cut}"

    class Boom(Exception):
        pass

    def explode(e):
        if cut == "mid-pretraining" and e["event"] == "checkpoint" and "pretrain" in Path(e["path"]).parts:
            raise Boom()
        if cut == "hand-over" and e["event"] == "step" and e["stage"] == "finetune":
            raise Boom()

    with pytest.raises(Boom):
        train(ws, cfg, "train", run=run, on_event=explode)
    pre = ws.runs_dir / run / "pretrain"
    if cut == "mid-pretraining":
        assert json.loads((pre / "last" / "state.json").read_text())["epoch"] == 1
        assert not (pre / "done.json").exists()
    else:
        assert (pre / "done.json").is_file()
        assert not (ws.runs_dir / run / "finetune" / "last" / "state.json").exists()
    resumed = train(ws, cfg, "train", run=run, resume=True)
    assert resumed.epochs == full.epochs == {"pretrain": 2, "finetune": 2}
    wa, wb = _weights(full), _weights(resumed)
    assert wa.keys() == wb.keys()
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa), \
        max(float((wa[k] - wb[k]).abs().max()) for k in wa)
    for part in ("valid", "test"):
        assert resumed.metrics[part]["ndcg@10"] == pytest.approx(full.metrics[part]["ndcg@10"], abs=1e-6)


@pytest.mark.realdata
def test_sigterm_cancels_with_a_resumable_checkpoint(ws, tmp_path):
    sets = [f"--set={k}={v}" for k, v in TINY.items()]
    cmd = [sys.executable, "-m", "core.cli", "train", str(ws.path), "--model", "sasrec", "--run", "sig",
           "--epochs", "50", "--progress-json", *sets]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    # stderr goes to a file: a pipe that nobody reads while stdout is read can fill and block
    with open(tmp_path / "stderr.txt", "w+") as errf:
        p = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=errf, text=True, env=env)
        events = []
        for line in p.stdout:
            events.append(json.loads(line))
            if events[-1]["event"] == "epoch":
                p.send_signal(signal.SIGTERM)
                break
        rest, _ = p.communicate(timeout=120)
        errf.seek(0)
        err = errf.read()
    events += [json.loads(x) for x in rest.splitlines()]
    assert p.returncode == 0, err
    assert events[-1]["event"] == "cancelled"
    assert Path(events[-1]["checkpoint"]).joinpath("state.json").is_file()
    assert not (ws.models_dir / "sig").exists()
    # resume with fewer epochs to finish quickly: the run's saved config wins, so set epochs there
    cfg_path = ws.runs_dir / "sig" / "config.json"
    saved = json.loads(cfg_path.read_text())
    done_epochs = max(e["epoch"] for e in events if e["event"] == "epoch")
    saved["finetune_epochs"] = done_epochs + 1
    cfg_path.write_text(json.dumps(saved))
    r = subprocess.run(cmd[:9] + ["--resume", "--progress-json"], cwd=REPO, capture_output=True,
                       text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    ev = [json.loads(x) for x in r.stdout.splitlines()]
    assert [e["epoch"] for e in ev if e["event"] == "epoch"] == [done_epochs + 1]
    assert ev[-1]["event"] == "done" and (ws.models_dir / "sig" / "manifest.json").is_file()


@pytest.mark.realdata
def test_ablations_and_text_only_run(ws):
    for name, over, which, stages in (
            ("noprep", {"pretrain": False}, "train", {"finetune": 1}),
            ("textonly", {"modalities": "text"}, "pretrain", {"pretrain": 1})):
        res = train(ws, _cfg(model="msm4sr", pretrain_epochs=1, finetune_epochs=1, **over), which, run=name)
        assert res.epochs == stages
        m = json.loads((res.model_dir / "manifest.json").read_text())
        assert m["stage"] == list(stages)[0]
        if name == "textonly":
            assert m["modalities"] == ["text"] and not any(k.startswith("mods.image") for k in m["tensors"])


@pytest.mark.realdata
def test_a_fixed_mixup_p_without_cmcl_trains_differently_from_a_drawn_p(ws):
    """The same seed with p drawn per batch and with p fixed at 0.3 (CMCL off in both):
    the config reaches the trainer, no CMCL term is computed, and the runs differ."""
    runs = {}
    for name, over in (("drawnp", {}), ("fixedp", {"mixup_p_fixed": 0.3})):
        events = []
        res = train(ws, _cfg(model="msm4sr", pretrain_epochs=1, cmcl=False, **over), "pretrain", run=name,
                    on_event=events.append)
        assert res.epochs == {"pretrain": 1}
        steps = [e for e in events if e["event"] == "step"]
        assert steps and all(set(e["losses"]) == {"nip_text", "nip_image"} for e in steps)
        m = json.loads((res.model_dir / "manifest.json").read_text())
        assert m["stage"] == "pretrain" and m["config"]["cmcl"] is False
        assert m["config"]["mixup_p_fixed"] == over.get("mixup_p_fixed")
        runs[name] = ([e["loss"] for e in steps], _weights(res))
    (drawn_losses, drawn), (fixed_losses, fixed) = runs["drawnp"], runs["fixedp"]
    assert drawn_losses != fixed_losses
    assert not torch.equal(drawn["encoder.blocks.0.qkv.weight"], fixed["encoder.blocks.0.qkv.weight"])


@pytest.mark.realdata
def test_finetune_from_a_pretrained_checkpoint(ws):
    pre = train(ws, _cfg(model="msm4sr", pretrain_epochs=1), "pretrain", run="pre-only")
    w0 = _weights(pre)
    ft = train(ws, _cfg(model="msm4sr", finetune_epochs=1, finetune_lr=1e-9), "finetune", run="ft",
               init_from=pre.model_dir)
    w1 = _weights(ft)
    # with a vanishing learning rate the transformer stays where pre-training left it
    assert torch.allclose(w0["encoder.blocks.0.qkv.weight"], w1["encoder.blocks.0.qkv.weight"], atol=1e-5)
    assert json.loads((ft.model_dir / "manifest.json").read_text())["use_ids"] is True


@pytest.mark.realdata
def test_pretraining_keeps_its_best_epoch_and_stops_after_patience(ws):
    from core import checkpoint
    from core.data import load_dataset
    from core.evaluate import rank_cases, reduce_metrics
    events = []
    cfg = _cfg(model="msm4sr", pretrain_epochs=8, pretrain_patience=1, pretrain_lr=0.03)
    res = train(ws, cfg, "pretrain", run="pre-best", on_event=events.append)
    curve = [e["valid"]["ndcg@10"] for e in events if e["event"] == "epoch"]
    best = max(range(len(curve)), key=curve.__getitem__) + 1
    done = json.loads((ws.runs_dir / "pre-best" / "pretrain" / "done.json").read_text())
    assert done["best_epoch"] == best
    assert len(curve) == res.epochs["pretrain"] == min(8, best + 1)    # one bad epoch ends it
    assert len(curve) < 8, curve    # a large step makes valid fall at some point here
    model, mcfg, _, _ = checkpoint.load_model(ws.runs_dir / "pre-best" / "pretrain" / "model")
    ds = load_dataset(ws, mcfg)
    model.set_features(ds.features)
    kept = reduce_metrics(rank_cases(model, ds.valid, mcfg.max_len))["ndcg@10"]
    assert kept == pytest.approx(curve[best - 1], abs=1e-9)


def test_adamw_decays_weight_matrices_only():
    from core.model import build
    from core.optim import param_groups
    cfg = load_config(overrides=dict(TINY, proj_heads=True))
    model = build(cfg, 30, 12, 12)
    decay, rest = param_groups(model, 0.5)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert {"encoder.blocks.0.qkv.weight", "encoder.blocks.1.ff1.weight", "mods.text.adaptor.weight",
            "mods.text.pool.proj.weight", "heads.image.weight"} <= decayed
    for n in decayed:   # never an embedding, a bias or a norm
        assert not any(s in n for s in ("id_emb", "encoder.pos", "bias", "ln", "norm", "missing")), n
    assert decay["weight_decay"] == 0.5 and rest["weight_decay"] == 0.0
    assert len(decay["params"]) + len(rest["params"]) == len(list(model.parameters()))
    # one real AdamW step with zero gradients: decayed weights shrink by lr * wd, the rest stay
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(param_groups(model, 0.5), lr=0.1)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for n, p in model.named_parameters():
        want = before[n] * (1 - 0.05) if n in decayed else before[n]
        assert torch.allclose(p.detach(), want, atol=1e-7), n
