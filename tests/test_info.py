"""`msm4sr info`: counts, time range, feature and model status, read without torch."""
import json
import subprocess
import sys

from core.cli import main
from core.splits import leave_one_out
from core.workspace import Item


def _fill(ws):
    with ws.transaction() as db:
        ws.upsert_items([Item("a", title="A", image="/x/a.png"), Item("b", title="B")], db)
        ws.add_interactions([("u1", "a", 1_000_000_000), ("u1", "b", 1_000_086_400),
                             ("u2", "a", 1_000_000_500)], db)
        ws.set_keywords([("a", "catalog-tags", [("red", 1.0)])], db)
        ws.set_meta("image_modality", {"available": False, "reason": "no CLIP weights"}, db)


def test_info_json_reports_counts_time_range_and_status(workspace, capsys):
    _fill(workspace)
    assert main(["info", str(workspace.path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["users"], info["items"], info["interactions"]) == (2, 2, 3)
    assert info["items_with_image"] == 1
    assert info["time_range"] == [1_000_000_000, 1_000_086_400]
    assert info["keyword_sources"] == {"catalog-tags": 1}
    assert info["features"] == {"text": None, "image": None}
    assert info["image_unavailable"] == "no CLIP weights"
    assert info["models"] == []


def test_info_text_is_plain_and_torch_free(workspace):
    _fill(workspace)
    code = ("import sys; from core.cli import main; rc = main(['info', sys.argv[1]]); "
            "assert 'torch' not in sys.modules, 'info imported torch'; sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code, str(workspace.path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "interactions   3" in out.stdout
    assert "2001-09-09 .. 2001-09-10" in out.stdout
    assert "image: unavailable: no CLIP weights" in out.stdout
    assert "text: not built" in out.stdout


def test_info_on_a_missing_workspace_is_a_clear_error(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope")]) == 2
    assert "not a workspace" in capsys.readouterr().err


def test_info_says_why_evaluation_has_fewer_users_and_what_saved_sequences_are(workspace):
    """u1 has 4 interactions, 2 with cold items: 2 warm ones are too few to evaluate.
    u2 has 3 warm ones, u3 only 2 interactions at all. Run as the real command."""
    with workspace.transaction() as db:
        workspace.upsert_items([Item(x, title=x, cold=x in ("c1", "c2")) for x in
                                ("a", "b", "c", "c1", "c2")], db)
        workspace.add_interactions([("u1", "a", 1), ("u1", "c1", 2), ("u1", "b", 3), ("u1", "c2", 4),
                                    ("u2", "a", 1), ("u2", "b", 2), ("u2", "c", 3),
                                    ("u3", "a", 1), ("u3", "b", 2)], db)
    workspace.save_sequence("mine", ["a", "b"])
    out = subprocess.run([sys.executable, "-m", "core.cli", "info", str(workspace.path), "--json"],
                         capture_output=True, text=True, timeout=60)
    info = json.loads(out.stdout)
    assert (info["users"], info["evaluation_users"]) == (3, 1)
    assert (info["short_after_cold"], info["short_users"]) == (1, 1)
    split = leave_one_out(workspace.sequences(), {"c1", "c2"})   # what training evaluates
    assert split.users == ["u2"]
    text = subprocess.run([sys.executable, "-m", "core.cli", "info", str(workspace.path)],
                          capture_output=True, text=True, timeout=60).stdout
    users = next(x for x in text.splitlines() if x.startswith("users "))
    assert "evaluation uses 1: 2 have too few warm items" in users
    assert "1 fall below 3 once the 2 cold-start items are held out" in users
    assert "1 has fewer than 3 interactions" in users
    assert "sequences      1 saved from the app" in text


def test_evaluate_on_an_unfinished_run_names_its_state_and_the_resume_command(ml1m, tmp_path,
                                                                              capsys):
    """A real run cancelled after its first pre-training epoch, then `evaluate` on it."""
    from core.config import Config
    from core.train import Trainer
    from model_fixtures import TINY, make_workspace
    ws = make_workspace(tmp_path / "ws", ml1m, users=40, image=False)
    events = []
    cfg = Config(**TINY, pretrain_epochs=3, finetune_epochs=1)
    Trainer(ws, cfg, "half", events.append,
            lambda: any(e["event"] == "epoch" for e in events)).fit("train")
    assert events[-1]["event"] == "cancelled"
    ws.close()
    for model in (tmp_path / "ws" / "models" / "half", tmp_path / "ws" / "runs" / "half"):
        assert main(["evaluate", str(tmp_path / "ws"), "--model", str(model)]) == 2
        err = capsys.readouterr().err
        assert "run 'half' has not finished (pretrain stopped after epoch 1, finetune not " \
               "started" in err, err
        assert f"msm4sr train {tmp_path / 'ws'} --run half --resume" in err
    # a folder that belongs to no run keeps the plain message
    assert main(["evaluate", str(tmp_path / "ws"), "--model", str(tmp_path / "elsewhere")]) == 2
    assert "not a model folder (no manifest.json)" in capsys.readouterr().err
