"""The training commands as a new user meets them: `config --list`, the settings in
--help, --minutes and its split, and the one "setup" report of modalities and losses."""
import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from core import cli
from core.cli_model import PRETRAIN_SHARE, _training_args, resolve_config
from core.config import COMMON, DESCRIPTIONS, Config
from model_fixtures import TINY, make_workspace

REPO = Path(__file__).resolve().parents[1]
SETS = [f"--set={k}={v}" for k, v in TINY.items()]


@pytest.fixture(scope="module")
def text_ws(ml1m, tmp_path_factory):
    """A workspace with text features only: what a catalog without images gives."""
    w = make_workspace(tmp_path_factory.mktemp("cli-train") / "ws", ml1m, users=40, image=False)
    yield w
    w.close()


def test_config_list_prints_every_setting_with_its_default_and_meaning(capsys):
    assert cli.main(["config", "--list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = [f.name for f in dataclasses.fields(Config)]
    assert [r["name"] for r in rows] == names
    base = Config()
    assert all(r["default"] == getattr(base, r["name"]) for r in rows)
    assert all(r["meaning"].strip() for r in rows), [r["name"] for r in rows if not r["meaning"]]
    assert cli.main(["config", "--list"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert len(text) == len(names)
    line = next(x for x in text if x.startswith("pretrain_minutes "))
    assert line.split()[1] == "0.0" and DESCRIPTIONS["pretrain_minutes"][:30] in line


def test_help_shows_the_budget_and_the_most_used_settings():
    r = subprocess.run([sys.executable, "-m", "core.cli", "train", "--help"], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert "--minutes M" in r.stdout and "a sixth of M" in r.stdout
    for k in COMMON:
        assert f"  {k} " in r.stdout, k
    for stage in ("pretrain", "finetune"):
        out = subprocess.run([sys.executable, "-m", "core.cli", stage, "--help"], cwd=REPO,
                             capture_output=True, text=True, timeout=60).stdout
        assert "--minutes M" in out and "pretrain_minutes" in out


def _cfg(*args, stage="train"):
    p = argparse.ArgumentParser()
    _training_args(p, stage)
    return resolve_config(p.parse_args(["WS", *args]), stage)


def test_minutes_are_split_between_the_stages_by_the_documented_rule():
    cfg = _cfg("--minutes", "30")
    assert cfg.pretrain_minutes == pytest.approx(30 * PRETRAIN_SHARE, abs=1e-3)
    assert cfg.pretrain_minutes + cfg.finetune_minutes == pytest.approx(30)
    for args, stage in ((["--model", "sasrec"], "train"), (["--set", "pretrain=false"], "train"),
                        ([], "finetune")):
        c = _cfg("--minutes", "12", *args, stage=stage)
        assert (c.pretrain_minutes, c.finetune_minutes) == (0.0, 12.0)
    c = _cfg("--minutes", "12", stage="pretrain")
    assert (c.pretrain_minutes, c.finetune_minutes) == (12.0, 0.0)
    # an explicit stage budget wins for its stage; the other still follows the rule
    c = _cfg("--minutes", "12", "--set", "pretrain_minutes=5")
    assert (c.pretrain_minutes, c.finetune_minutes) == (5.0, pytest.approx(10.0))
    for bad in ("0", "-3", "soon", "inf"):
        with pytest.raises(SystemExit):
            _cfg("--minutes", bad)


def test_a_tiny_budget_ends_each_stage_after_its_first_epoch(text_ws, capsys):
    code = cli.main(["train", str(text_ws.path), "--run", "budget", "--minutes", "1e-6",
                     "--epochs", "40", "--progress-json", *SETS, "--set", "patience=0",
                     "--set", "pretrain_patience=0"])
    assert code == 0
    events = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    epochs = [(e["stage"], e["epoch"]) for e in events if e["event"] == "epoch"]
    assert epochs == [("pretrain", 1), ("finetune", 1)]
    assert events[-1]["event"] == "done"
    setup = next(e for e in events if e["event"] == "setup")
    assert setup["budget_minutes"] == {"pretrain": pytest.approx(1e-6 * PRETRAIN_SHARE),
                                       "finetune": pytest.approx(1e-6 * (1 - PRETRAIN_SHARE))}


def test_text_only_training_says_once_what_is_off_and_why(text_ws, capsys):
    code = cli.main(["train", str(text_ws.path), "--run", "textonly", "--epochs", "1",
                     "--progress-json", *SETS])
    assert code == 0
    events = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    setups = [e for e in events if e["event"] == "setup"]
    assert len(setups) == 1 and [e["event"] for e in events[:2]] == ["start", "setup"]
    s = setups[0]
    assert s["modalities"] == ["text"] and s["mixup"] is False
    assert s["losses"] == {"pretrain": ["nip_text"], "finetune": ["ce"]}
    assert any("image NIP, CMCL and mixup off" in n and "no image features" in n for n in s["notes"])
    # the losses it announced are the ones it trained with
    pre = {k for e in events if e["event"] == "step" and e["stage"] == "pretrain" for k in e["losses"]}
    assert pre == set(s["losses"]["pretrain"])
    # on a terminal the same report is printed once, before training
    r = subprocess.run([sys.executable, "-m", "core.cli", "pretrain", str(text_ws.path), "--run",
                        "textonly-tty", "--epochs", "1", *SETS], cwd=REPO, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("image NIP, CMCL and mixup off") == 1
    assert "modalities: text" in r.stderr and "pretrain losses: NIP (text)" in r.stderr


def test_both_modalities_announce_cmcl_and_mixup(ml1m, tmp_path):
    from core.config import load_config
    from core.train import train
    ws = make_workspace(tmp_path / "ws", ml1m, users=30)
    events = []
    train(ws, load_config(overrides=dict(TINY, pretrain_epochs=1, mixup=False)), "pretrain",
          run="both", on_event=events.append)
    s = next(e for e in events if e["event"] == "setup")
    assert s["modalities"] == ["text", "image"] and s["mixup"] is False
    assert s["losses"] == {"pretrain": ["nip_text", "nip_image", "cmcl"]}
    assert "mixup=false: no sequence mixup" in s["notes"]
    ws.close()
