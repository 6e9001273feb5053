"""Training panel: real `msm4sr` subprocesses on a tiny real workspace."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from gui_support import save_shot
from gui_tiny import TINY_SETS, build_workspace

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


@pytest.fixture(scope="module")
def ws_path(tmp_path_factory, ml1m):
    return build_workspace(tmp_path_factory.mktemp("gui-train") / "ws", ml1m, users=60)


@pytest.fixture
def setup(qtbot, ws_path):
    from gui.state import Session
    from gui.training import TrainingPanel
    s = Session()
    s.open_workspace(ws_path)
    p = TrainingPanel(s)
    qtbot.addWidget(p)
    p.resize(1100, 560)
    p.show()
    # the form's own fields set the sizes the test cares about; the rest keeps the run tiny
    p.form.extra_sets = [x for x in TINY_SETS if not x.split("=")[0] in
                         ("pretrain_epochs", "finetune_epochs", "pretrain_batch", "finetune_batch", "hidden",
                          "max_len", "device")]
    p.form.hidden.setValue(16)
    p.form.max_len.setValue(20)
    p.form.device_box.setCurrentText("cpu")
    p.form.pre_batch.setValue(64)
    p.form.ft_batch.setValue(64)
    messages = []
    s.message.connect(lambda level, text: messages.append((level, text)))
    yield s, p, messages
    p.shutdown()


def _state(pid: int) -> str:
    """A process's state letter from /proc (T = stopped)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2]


def test_a_short_run_plots_live_and_offers_the_new_model(qtbot, setup):
    session, panel, messages = setup
    panel.form.pre_epochs.setValue(1)
    panel.form.ft_epochs.setValue(2)
    panel.form.run_name.setText("gui-done")
    with qtbot.waitSignal(panel.runFinished, timeout=180_000) as fin:
        assert panel.start()
        assert panel.state == panel.RUNNING and not panel.start_btn.isEnabled()
        assert panel.command_line.text().startswith("msm4sr train ")
        # the work is another process's: the GUI thread only reads its output
        assert panel.proc.processId() not in (0, os.getpid())
        # the GUI stays live while the process runs: the loss plot fills during the run
        qtbot.waitUntil(lambda: any(len(xs) >= 2 for xs, _ in panel._loss.values()), timeout=120_000)
        assert panel.state != panel.IDLE
    assert fin.args[0] == "done", (panel.error_text, panel.log.toPlainText())
    # the training ran in a subprocess, and what the GUI thread spent on its output is its own
    # CPU time per handler call (bench/bench_gui.py reports the event-loop gap on the clock)
    print(f"longest output/plot handler: {panel.max_handler_ms:.1f} ms of GUI-thread CPU")
    assert 0 < panel.max_handler_ms < 100
    ckpt = Path(fin.args[1])
    assert (ckpt / "manifest.json").is_file() and ckpt.parent == session.ws_path / "models"
    kinds = [e["event"] for e in panel.events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    steps = [e for e in panel.events if e["event"] == "step"]
    assert {e["stage"] for e in steps} == {"pretrain", "finetune"}
    # one curve per loss name and stage, holding every step event's value
    for stage in ("pretrain", "finetune"):
        for name in steps[-1]["losses"] if steps[-1]["stage"] == stage else []:
            xs, ys = panel._loss[f"{stage} {name}"]
            # a short last batch (fewer in-batch negatives, a lower loss) is left off the curve
            assert ys == [e["losses"][name] for e in steps if e["stage"] == stage and e["rows"] == e["batch"]]
    curves = {c.name(): c for c in panel.loss_plot.getPlotItem().listDataItems()}
    assert set(curves) == set(panel._loss)
    for name, curve in curves.items():
        assert list(curve.getData()[1]) == pytest.approx(panel._loss[name][1])
    epochs = [e for e in panel.events if e["event"] == "epoch" and e["stage"] == "finetune"]
    assert panel._metric["finetune ndcg@10"][1] == [e["valid"]["ndcg@10"] for e in epochs]
    assert len(epochs) == 2
    assert panel.state == panel.IDLE and panel.start_btn.isEnabled() and not panel.cancel_btn.isEnabled()
    assert panel.load_btn.isVisible()
    save_shot(panel, "training_done.png")

    with qtbot.waitSignal(session.modelChanged, timeout=60_000):
        panel.load_btn.click()
    assert session.recommender is not None and session.model_path == ckpt
    assert session.recommender.manifest["config"]["hidden"] == 16


def test_pause_resume_cancel_then_resume_the_run(qtbot, setup):
    session, panel, messages = setup
    panel.form.stage_box.setCurrentIndex(panel.form.stage_box.findData("finetune"))
    panel.form.ft_epochs.setValue(500)
    panel.form.ft_batch.setValue(16)       # many short steps: it is mid-run when we act
    panel.form.extra_sets.append("patience=1000")
    panel.form.run_name.setText("gui-cancel")
    assert panel.start()
    qtbot.waitUntil(lambda: sum(e["event"] == "step" for e in panel.events) >= 2, timeout=120_000)
    pid = int(panel.proc.processId())

    panel.pause_btn.click()
    assert panel.state == panel.PAUSED and panel.pause_btn.text() == "Resume"
    qtbot.waitUntil(lambda: _state(pid) == "T", timeout=5000)
    n = len(panel.events)
    qtbot.wait(700)
    assert len(panel.events) == n     # nothing comes while stopped
    panel.pause_btn.click()
    assert panel.state == panel.RUNNING
    qtbot.waitUntil(lambda: len(panel.events) > n, timeout=30_000)

    panel.pause_btn.click()           # cancel a paused run: it must still stop cleanly
    qtbot.waitUntil(lambda: _state(pid) == "T", timeout=5000)
    with qtbot.waitSignal(panel.runFinished, timeout=60_000) as fin:
        panel.cancel_btn.click()
        assert panel.state == panel.STOPPING
    assert fin.args[0] == "cancelled", (panel.error_text, panel.log.toPlainText())
    last = Path(fin.args[1])
    assert last == session.ws_path / "runs" / "gui-cancel" / "finetune" / "last"
    assert (last / "state.json").is_file() and (last / "weights.safetensors").is_file()
    assert not Path(f"/proc/{pid}").exists() or _state(pid) == "Z"
    assert panel.state == panel.IDLE and panel.start_btn.isEnabled()
    assert not panel.pause_btn.isEnabled() and not panel.cancel_btn.isEnabled()
    assert not panel.load_btn.isVisible()
    assert "Resumable checkpoint" in panel.status.text()
    save_shot(panel, "training_cancelled.png")

    # "Resume last run" continues that run, not a new one
    panel.form.run_name.clear()
    panel.form.resume.setChecked(True)
    args = panel.arguments()
    assert args[args.index("--run") + 1] == "gui-cancel" and "--resume" in args
    epochs_before = json.loads((last / "state.json").read_text())["epoch"]
    assert panel.start()
    qtbot.waitUntil(lambda: any(e["event"] == "step" for e in panel.events), timeout=120_000)
    first = next(e for e in panel.events if e["event"] == "step")
    assert first["epoch"] == epochs_before + 1

    # a process that dies (here: killed from outside) is reported, and the panel goes on
    with qtbot.waitSignal(panel.runFinished, timeout=30_000) as fin:
        os.kill(int(panel.proc.processId()), signal.SIGKILL)
    assert fin.args[0] == "error" and "killed" in fin.args[1]
    assert any(level == "error" for level, _ in messages)
    assert panel.state == panel.IDLE and panel.start_btn.isEnabled()


def test_a_failing_run_shows_the_error_and_the_panel_goes_on(qtbot, setup):
    session, panel, messages = setup
    panel.form.extra_sets.append("no_such_setting=1")
    panel.form.run_name.setText("gui-bad")
    with qtbot.waitSignal(panel.runFinished, timeout=60_000) as fin:
        assert panel.start()
    assert fin.args[0] == "error"
    assert "no_such_setting" in fin.args[1] or "no_such_setting" in panel.log.toPlainText()
    assert any(level == "error" for level, _ in messages)
    assert "failed" in panel.status.text()
    assert panel.state == panel.IDLE and panel.start_btn.isEnabled()
    save_shot(panel, "training_failed.png")



def test_form_starts_at_the_library_defaults_and_applies_the_paper_preset(qtbot, setup):
    from core.config import PRESETS, Config
    session, panel, messages = setup
    form = panel.form
    d = Config()
    form.preset_box.setCurrentIndex(form.preset_box.findData(None))
    assert form.ft_lr.value() == pytest.approx(d.finetune_lr)
    assert form.ft_wd.value() == pytest.approx(d.finetune_weight_decay)
    args = form.arguments()
    assert "--preset" not in args and f"finetune_lr={d.finetune_lr:g}" in args
    form.preset_box.setCurrentIndex(form.preset_box.findData("paper"))
    paper = PRESETS["paper"]
    assert form.ft_lr.value() == pytest.approx(paper["finetune_lr"])
    assert form.ft_wd.value() == pytest.approx(paper["finetune_weight_decay"])
    assert form.pre_batch.value() == paper["pretrain_batch"]
    args = form.arguments()
    assert args[args.index("--preset") + 1] == "paper"
    # the command line resolves to the preset's optimiser with the form's values on top
    import argparse
    from core.cli_model import _training_args, resolve_config
    p = argparse.ArgumentParser()
    _training_args(p, "train")
    cfg = resolve_config(p.parse_args(args[1:]), "train")
    assert (cfg.optimizer, cfg.finetune_lr, cfg.finetune_weight_decay) == ("adam", 1e-4, 1e-3)
    form.model_box.setCurrentIndex(form.model_box.findText("SASRec (IDs only)"))
    assert "sasrec_weight_decay=0.001" in form.arguments()
