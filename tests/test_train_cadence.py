"""Pre-training's validation cadence: eval_every, the last epoch, and the cap on
validation's share of the stage's time (eval_share), as the trainer and the terminal show it."""
import json

import pytest

from core import cli
from core.config import load_config
from core.errors import InputError
from core.train import train
from core.train_plan import Cadence
from model_fixtures import TINY, make_workspace


def test_due_follows_eval_every_the_last_epoch_and_the_share():
    every = Cadence(1)
    assert all(every.due(e, False, {"train_s": 1.0, "valid_s": 99.0, "valid_n": 3}) for e in (1, 2, 7))
    two = Cadence(2)
    assert [two.due(e, e == 5, {}) for e in range(1, 6)] == [False, True, False, True, True]
    capped = Cadence(1, 0.2)
    assert capped.due(1, False, {"train_s": 3.0, "valid_s": 0.0, "valid_n": 0})  # first: measure
    # one more validation of 1 s: 2 s of 12 s = 17 % -> due; 2 s of 6 s = 33 % -> skipped
    assert capped.due(2, False, {"train_s": 10.0, "valid_s": 1.0, "valid_n": 1})
    assert not capped.due(2, False, {"train_s": 4.0, "valid_s": 1.0, "valid_n": 1})
    assert capped.due(9, True, {"train_s": 4.0, "valid_s": 1.0, "valid_n": 1})   # last: always
    assert not Cadence(2, 0.2).due(3, False, {"train_s": 100.0, "valid_s": 0.0, "valid_n": 1})
    assert Cadence(1, 0.0).share is None    # 0: eval_every alone
    cfg = load_config(overrides={"eval_share": 0.3})
    assert Cadence.of(cfg, "pretrain").share == 0.3 and Cadence.of(cfg, "finetune").share is None
    for bad in ("1", "-0.1", "nan"):
        with pytest.raises(InputError, match="eval_share"):
            load_config(overrides={"eval_share": bad})


@pytest.fixture(scope="module")
def ws(ml1m, tmp_path_factory):
    w = make_workspace(tmp_path_factory.mktemp("cadence") / "ws", ml1m, users=30)
    yield w
    w.close()


def _validated(events, stage="pretrain"):
    return [e["epoch"] for e in events if e["event"] == "epoch" and e["stage"] == stage and e["valid"]]


def test_a_tiny_share_validates_only_the_first_and_the_last_pretraining_epoch(ws):
    events = []
    train(ws, load_config(overrides=dict(TINY, pretrain_epochs=4, finetune_epochs=2, eval_share=1e-9)),
          "train", run="capped", on_event=events.append)
    assert _validated(events) == [1, 4]
    assert _validated(events, "finetune") == [1, 2]   # fine-tuning keeps eval_every
    ep = [e for e in events if e["event"] == "epoch" and e["stage"] == "pretrain"]
    assert [e["valid_s"] for e in ep[1:3]] == [0, 0]
    # no validation in epochs 2 and 3: validation's share of the stage can only shrink
    assert ep[0]["valid_share"] >= ep[1]["valid_share"] >= ep[2]["valid_share"] >= 0
    assert all(e["valid_share"] < 1 for e in ep)
    setup = next(e for e in events if e["event"] == "setup")
    assert "skipping any that would take validation past 0% of the stage's time" in \
        setup["validation"]["pretrain"]
    assert setup["validation"]["finetune"].startswith("every epoch on all 30 valid users")
    # the resumable state carries the times, so a resume goes on with them
    state = json.loads((ws.runs_dir / "capped" / "pretrain" / "last" / "state.json").read_text())
    assert state["valid_n"] == 2 and state["train_s"] > 0 and state["valid_s"] > 0
    events = []
    train(ws, load_config(overrides=dict(TINY, pretrain_epochs=4, pretrain=True)), "pretrain",
          run="every", on_event=events.append)
    assert _validated(events) == [1, 2, 3, 4]    # TINY: eval_share 0, every epoch


def test_the_terminal_says_when_an_epoch_is_not_validated(ws, capsys):
    sets = [f"--set={k}={v}" for k, v in TINY.items() if k != "eval_share"]
    assert cli.main(["pretrain", str(ws.path), "--run", "tty", "--epochs", "3", *sets,
                     "--set", "eval_share=1e-9"]) == 0
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("pretrain epoch") and " step:" not in x]
    assert len(lines) == 3
    assert "valid ndcg@10" in lines[0] and "of the stage)" in lines[0]
    assert "not validated; validation" in lines[1] and "valid ndcg@10" not in lines[1]
    assert "valid ndcg@10" in lines[2]
    assert "pretrain validation: every epoch on all 30 valid users, skipping any" in err
