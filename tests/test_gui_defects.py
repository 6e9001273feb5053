"""The defects issue 10 found when the app was tried as a new user would, each on real widgets,
the demo workspace built by core/demo.py and the shipped demo model (trained_models/demo)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, QUrl
from PySide6.QtWidgets import QApplication, QMessageBox

from core.workspace import Workspace
from gui.settings import Settings
from gui.state import Session
from gui.workers import wait_all
from gui_support import save_shot

REPO = Path(__file__).resolve().parents[1]
# the demo in seconds on two CPU cores: the panel's own fields set what the tests look at
SMALL = ["layers=1", "inner=32", "pool_dim=16", "experts=2", "eval_batch=256", "threads=1",
         "patience=1000"]


def demo_model() -> Path:
    from gui.app import DEMO_MODEL
    return DEMO_MODEL


@pytest.fixture
def demo_ws(built_demo, tmp_path) -> Path:
    path = tmp_path / "demo"
    shutil.copytree(built_demo[0], path)
    return path


@pytest.fixture
def settings(tmp_path):
    return Settings(QSettings(str(tmp_path / "studio.ini"), QSettings.IniFormat))


def answer(box_signal, button):
    """Answer the next question the window asks (it shows a real QMessageBox) with `button`."""
    def on_box(box):
        from PySide6.QtCore import QTimer
        QTimer.singleShot(0, lambda: box.button(button).click())
    box_signal.connect(on_box)
    return on_box


def small_form(panel, hidden=16):
    f = panel.form
    f.extra_sets = list(SMALL)
    f.hidden.setValue(hidden)
    f.max_len.setValue(20)
    f.device_box.setCurrentText("cpu")
    f.pre_batch.setValue(256)
    f.ft_batch.setValue(256)


# ---- attention labels ---------------------------------------------------------------------
def test_attention_rows_tell_long_titles_apart(qtbot, demo_ws):
    """Titles that share their first 14 characters no longer all read "Star Wars: Ep…"."""
    from gui.attention import AttentionPanel
    from gui.model_calls import load_recommender
    titles = ["Star Wars: Episode IV - A New Hope (1977)",
              "Star Wars: Episode V - The Empire Strikes Back (1980)",
              "Star Wars: Episode VI - Return of the Jedi (1983)"]
    with Workspace.open(demo_ws) as ws:
        ids = [ws.add_new_item(t, f"{t}, a space film.").id for t in titles]
        ids.append(ws.item_ids()[0])
    session = Session()
    session.open_workspace(demo_ws)
    panel = AttentionPanel(session)
    qtbot.addWidget(panel)
    panel.resize(900, 420)
    panel.show()
    session.set_recommender(load_recommender(demo_model(), demo_ws), demo_model())
    with qtbot.waitSignal(panel.mapsShown, timeout=120_000):
        session.set_sequence(ids)
    ticks = [t for _, t in panel.plots[0][0].getAxis("left")._tickLevels[0]]
    assert len(set(ticks)) == len(ticks)
    for k, roman in enumerate(("IV", "V", "VI")):
        assert ticks[k].startswith(f"{k + 1}. Star Wars…{roman} - "), ticks
    assert "Episode V - The Empire" in panel.describe(1, 0, panel.plots[0][2])   # hover: the whole title
    wait_all()
    session.ws.close()


# ---- new items: delete, and an image already in the catalog ---------------------------------
@pytest.fixture
def seq_ui(qtbot, demo_ws):
    from gui.model_calls import load_recommender
    from gui.sequence import SequencePanel
    session = Session()
    messages = []
    session.message.connect(lambda level, text: messages.append((level, text)))
    session.open_workspace(demo_ws)
    panel = SequencePanel(session)
    qtbot.addWidget(panel)
    panel.resize(360, 520)
    panel.show()
    yield session, panel, messages, load_recommender
    wait_all()
    QApplication.processEvents()
    session.ws.close()


def test_a_new_item_can_be_deleted_and_trains_no_more(qtbot, seq_ui):
    session, panel, messages, load_recommender = seq_ui
    rec = load_recommender(demo_model(), session.ws_path)
    session.set_recommender(rec, demo_model())
    first = session.ws.item_ids()[0]
    panel.set_ids([first])
    with qtbot.waitSignal(panel.dialogOpened, timeout=10_000) as opened:
        panel.buttons["New item…"].click()
    dlg = opened.args[0]
    dlg.title.setText("A brand-new lamp")
    dlg.text.setPlainText("a small desk lamp")
    with qtbot.waitSignal(panel.itemCreated, timeout=60_000) as created:
        dlg.accept()
    new_id = created.args[0]
    qtbot.waitUntil(lambda: not panel.busy(), timeout=120_000)     # its features are in
    session.ws.save_sequence("mine", [first, new_id])
    rec.recommend([first, new_id], k=5)                           # the model knows it now
    assert new_id in rec.new_ids

    # a catalog item cannot be deleted, only removed from the sequence
    panel.view.selectionModel().clearSelection()
    panel.view.setCurrentIndex(panel.model.index(0))
    assert not panel.buttons["Delete item…"].isEnabled()
    panel.view.setCurrentIndex(panel.model.index(1))
    assert panel.buttons["Delete item…"].isEnabled()

    boxes = []
    panel.dialogOpened.connect(boxes.append)
    with qtbot.waitSignal(panel.itemsDeleted, timeout=30_000) as deleted:
        panel.buttons["Delete item…"].click()
        assert isinstance(boxes[-1], QMessageBox) and "A brand-new lamp" in boxes[-1].text()
        save_shot(boxes[-1], "delete_new_item.png")
        boxes[-1].button(QMessageBox.Yes).click()
    assert deleted.args[0] == [new_id]
    assert session.ws.item(new_id) is None and new_id not in session.ws.item_ids()
    assert session.sequence == [first] and session.ws.load_sequence("mine") == [first]
    assert new_id not in rec.new_ids
    assert new_id not in {i for i, _ in rec.recommend([first], k=500)}
    # the next training run's items are the workspace's: the deleted item is not among them
    from core.config import Config
    from core.data import load_dataset
    with Workspace.open(session.ws_path) as ws:
        assert new_id not in load_dataset(ws, Config()).item_ids


def test_a_dropped_image_already_in_the_catalog_is_named(qtbot, seq_ui, tmp_path):
    session, panel, messages, _ = seq_ui
    item = next(it for it in session.ws.items() if it.image)
    src = session.ws.image_path(item)
    dropped = tmp_path / f"holiday-photo{src.suffix}"
    shutil.copyfile(src, dropped)
    n_items = len(session.ws.item_ids())
    with qtbot.waitSignal(panel.dialogOpened, timeout=30_000) as opened:
        panel.drop_files([QUrl.fromLocalFile(str(dropped))])
    dlg = opened.args[0]
    assert dlg.duplicates == [(item.id, item.title)]
    assert dlg.duplicate_note.isVisibleTo(dlg) and item.title in dlg.duplicate_note.text()
    assert any(level == "warning" and item.id in text for level, text in messages)
    qtbot.waitUntil(lambda: dlg.image_path is not None, timeout=10_000)
    save_shot(dlg, "dropped_duplicate.png")
    dlg.use_existing.click()
    assert session.sequence == [item.id] and len(session.ws.item_ids()) == n_items

    # an image the catalog does not have: a new item, no warning
    from PIL import Image
    other = tmp_path / "new-thing.png"
    Image.new("RGB", (64, 48), (20, 140, 90)).save(other)
    with qtbot.waitSignal(panel.dialogOpened, timeout=30_000) as opened:
        panel.drop_files([QUrl.fromLocalFile(str(other))])
    assert opened.args[0].duplicates == [] and not opened.args[0].duplicate_note.isVisibleTo(opened.args[0])
    opened.args[0].reject()


# ---- the main window: layout, messages, switching workspace -------------------------------------
@pytest.fixture
def window(qtbot, settings):
    from gui.app import MainWindow
    win = MainWindow(Session(), settings, remember_layout=False)
    qtbot.addWidget(win)
    yield win
    training = getattr(win.training, "shutdown", None)
    if training:
        training()
    win.close()
    wait_all()
    QApplication.processEvents()
    if win.session.ws is not None:
        win.session.ws.close()


def test_inspector_keeps_its_width_on_a_small_window_and_gets_it_back(qtbot, window, demo_ws):
    win = window
    win.resize(1024, 700)
    win.show()
    qtbot.waitExposed(win)
    qtbot.waitUntil(lambda: win.panels_ready, timeout=60_000)
    assert win.open_workspace(demo_ws)
    item = next(it for it in win.session.ws.items() if it.image)
    win.session.select(item.id)
    qtbot.waitUntil(lambda: win.inspector._picture is not None, timeout=30_000)
    qtbot.wait(50)
    small = win.docks["Inspector"].width()
    assert small >= 220, small                   # was 60-160 px
    assert win.width() <= 1024
    # nothing in it is wider than what shows: the picture follows the dock, text wraps
    insp = win.inspector
    assert insp.widget().width() <= insp.viewport().width()
    assert insp.image.pixmap().width() <= insp.viewport().width()
    save_shot(win, "window_1024x700.png")
    win.resize(1440, 900)
    qtbot.waitUntil(lambda: win.docks["Inspector"].width() >= 330, timeout=5000)
    assert win.centralWidget().width() >= 500


def test_status_messages_do_not_go_stale(qtbot, window):
    win = window
    win.session.info("checking holiday.png…")
    assert win.message.text() == "checking holiday.png…" and win._message_timer.isActive()
    win._message_timer.timeout.emit()           # what the timer does when it runs out
    assert win.message.text() == ""
    win.session.error("something failed")
    assert not win._message_timer.isActive() and win.message.text() == "something failed"
    win._errors.hide()


def test_switching_workspace_keeps_the_run_and_the_sequence_safe(qtbot, window, demo_ws, tmp_path):
    """Refused while training runs; the sequence is saved when the user asks; nothing of the
    old workspace's run, errors or messages stays."""
    win = window
    win.resize(1300, 850)
    win.show()
    qtbot.waitUntil(lambda: win.panels_ready, timeout=60_000)
    other = tmp_path / "other"
    shutil.copytree(demo_ws, other)
    assert win.open_workspace(demo_ws)
    seq = win.session.ws.item_ids()[:3]
    win.sequence.set_ids(seq)
    panel = win.training
    small_form(panel)
    panel.form.model_box.setCurrentIndex(panel.form.model_box.findText("MSM4SR without pre-training"))
    panel.form.ft_epochs.setValue(200)
    panel.form.run_name.setText("long")
    assert panel.start()
    qtbot.waitUntil(lambda: any(e["event"] == "step" for e in panel.events), timeout=180_000)

    asked = []
    win.questionAsked.connect(asked.append)
    answer(win.questionAsked, QMessageBox.Ok)
    assert not win.open_workspace(other)
    assert "still going" in asked[-1].text() and win.session.ws_path == demo_ws
    win.questionAsked.disconnect()
    win.questionAsked.connect(asked.append)

    # Cancel: the panel says it is stopping (never "Running…") and offers "Stop now"
    panel.cancel()
    assert panel.state == panel.STOPPING and panel.status.text().startswith("Stopping after the current step")
    assert panel.cancel_btn.isEnabled() and panel.cancel_btn.text() == "Stop now"
    save_shot(panel, "training_stopping.png")
    with qtbot.waitSignal(panel.runFinished, timeout=60_000) as fin:
        qtbot.wait(300)
        assert not panel.status.text().startswith("Running")
        panel.cancel_btn.click()                 # Stop now
    assert fin.args[0] == "cancelled" and panel.state == panel.IDLE
    panel.form.resume.setChecked(True)
    win.session.error("an error of the old workspace")

    answer(win.questionAsked, QMessageBox.Save)
    assert win.open_workspace(other)
    assert "sequence of 3 items" in asked[-1].text()
    assert win.session.ws_path == other and win.session.sequence == []
    with Workspace.open(demo_ws) as ws:
        saved = [n for n in ws.sequence_names() if n.startswith("before switching")]
        assert len(saved) == 1 and ws.load_sequence(saved[0]) == seq
    assert not win._errors.isVisible() and "old workspace" not in win.message.text()
    assert panel.last_run is None and not panel.form.resume.isChecked() and not panel.form.run_name.text()
    assert panel.events == [] and panel._loss == {} and not panel.loss_plot.getPlotItem().listDataItems()
    assert panel.command_line.text() == "" and not panel.load_btn.isVisible() and panel.status.text() == "Idle."

    # an empty sequence (or the demo's own) switches without a question
    n = len(asked)
    assert win.open_workspace(demo_ws) and len(asked) == n


# ---- resume honours changed settings, and the plots go on ----------------------------------------
@pytest.fixture
def train_panel(qtbot, demo_ws):
    from gui.training import TrainingPanel
    session = Session()
    session.open_workspace(demo_ws)
    panel = TrainingPanel(session)
    qtbot.addWidget(panel)
    panel.resize(1100, 560)
    panel.show()
    small_form(panel)
    panel.form.model_box.setCurrentIndex(panel.form.model_box.findText("MSM4SR without pre-training"))
    yield session, panel
    panel.shutdown()
    session.ws.close()


def test_resume_takes_fewer_epochs_and_the_plots_keep_their_history(qtbot, train_panel):
    session, panel = train_panel
    panel.form.ft_epochs.setValue(10)
    panel.form.run_name.setText("r1")
    assert panel.start()
    qtbot.waitUntil(lambda: sum(e["event"] == "epoch" for e in panel.events) >= 1, timeout=240_000)
    with qtbot.waitSignal(panel.runFinished, timeout=120_000) as fin:
        panel.cancel()
    assert fin.args[0] == "cancelled"
    first = [e for e in panel.events if e["event"] == "epoch"]
    first_loss = {k: list(v[1]) for k, v in panel._loss.items()}

    # a model setting cannot change on resume: said before anything starts
    panel.form.run_name.clear()
    panel.form.resume.setChecked(True)
    panel.form.hidden.setValue(32)
    assert not panel.start() and panel.state == panel.IDLE
    assert "Cannot resume" in panel.status.text() and "hidden 16 (asked: 32)" in panel.status.text()
    panel.form.hidden.setValue(16)

    done_epochs = len(first)
    panel.form.ft_epochs.setValue(done_epochs + 1)
    with qtbot.waitSignal(panel.runFinished, timeout=240_000) as fin:
        assert panel.start()
        assert f"fine-tune epochs 10 → {done_epochs + 1}" in panel.status.text()
    assert fin.args[0] == "done", (panel.error_text, panel.log.toPlainText())
    # the process's peak memory is shown (read from /proc while it runs), near the form's estimate
    assert "Peak memory" in panel.status.text()
    assert 0.6 * panel.form.peak_mb() < panel.peak_mb < 1.6 * panel.form.peak_mb(), \
        (panel.peak_mb, panel.form.peak_mb())
    epochs = [e for e in panel.events if e["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [done_epochs + 1]          # stopped at the new limit
    saved = json.loads((session.ws_path / "runs" / "r1" / "config.json").read_text())
    assert saved["finetune_epochs"] == done_epochs + 1
    # the validation curve holds the earlier epochs, then the new one, on one epoch axis
    xs, ys = panel._metric["finetune ndcg@10"]
    assert xs == list(range(1, done_epochs + 2))
    assert ys[:done_epochs] == pytest.approx([e["valid"]["ndcg@10"] for e in first])
    # the loss curve starts with the earlier run's completed epochs
    for name, old in first_loss.items():
        assert len(panel._loss[name][1]) > 0
        assert panel._loss[name][1][:1] == old[:1]

    # partial last batches are not on the loss curve; legends sit under the plots
    steps = [e for e in panel.events if e["event"] == "step"]
    short = [e for e in steps if e["rows"] < e["batch"]]
    assert short, "the demo's last batch of an epoch is a short one"
    assert panel.plots.partial_left_out >= len(short)
    for plot, legend in ((panel.loss_plot, panel.plots.loss_legend), (panel.metric_plot, panel.plots.metric_legend)):
        vb = plot.getPlotItem().getViewBox().sceneBoundingRect()
        assert legend.sceneBoundingRect().top() >= vb.bottom() - 1
        assert len(legend.items) == len(plot.getPlotItem().listDataItems())
    save_shot(panel, "training_resumed.png")


def test_the_form_says_what_a_run_needs_in_memory_and_refuses_what_cannot_fit(qtbot, train_panel):
    """The demo's 4 GB: the paper preset's pre-training batch of 1024 windows, each encoded four
    times (two modalities, two mixed views) with its activations kept for backward; the item
    count plays no part. The form shows the estimate and a run that cannot fit never starts."""
    session, panel = train_panel
    f = panel.form
    f.model_box.setCurrentIndex(f.model_box.findText("MSM4SR"))
    f.max_len.setValue(50)
    f.hidden.setValue(64)
    f.pre_batch.setValue(1024)
    assert 3.8 < f.peak_mb() / 1024 < 4.8 and "about 4.2 GB" in f.memory.text()
    f.pre_batch.setValue(256)
    assert f.peak_mb() / 1024 < 1.8
    f.pre_batch.setValue(65_536)
    f.max_len.setValue(1000)
    f.hidden.setValue(4096)
    assert not panel.start() and panel.proc is None
    assert "Not started" in panel.status.text() and "lower the pre-train or fine-tune batch" in panel.status.text()


# ---- dialogs speak the app's language; the wizard checks CLIP first --------------------------------
def test_import_wizard_checks_clip_weights_before_importing(qtbot, settings, tmp_path, monkeypatch):
    from gui.import_wizard import ImportWizard
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    wiz = ImportWizard(Session(), settings)
    qtbot.addWidget(wiz)
    page = wiz.options_page
    wiz.setStartId(wiz.pageIds()[2])            # straight to "Options and target"
    with qtbot.waitSignal(page.clip.checked, timeout=300_000) as checked:
        wiz.show()                               # the wizard initialises the page: the check starts
    assert checked.args[0] is False and page.clip.isVisibleTo(page)
    text = page.clip.note.text()
    assert "not available" in text and "Choose a local CLIP weights file" in text and "--" not in text
    assert wiz.currentPage() is page
    qtbot.wait(100)                             # the form makes room for the wrapped note
    save_shot(wiz, "import_clip_missing.png")

    bad = tmp_path / "clip.bin"
    bad.write_bytes(b"\x80\x04 not a safetensors file")
    page.clip.edit.setText(str(bad))
    with qtbot.waitSignal(page.clip.checked, timeout=300_000) as checked:
        page.clip.check()
    assert checked.args[0] is False and "must be a .safetensors file" in page.clip.note.text()

    import numpy as np
    from safetensors.numpy import save_file
    good = tmp_path / "clip.safetensors"
    save_file({"visual.proj": np.zeros((4, 4), np.float32)}, str(good))
    page.clip.edit.setText(str(good))
    with qtbot.waitSignal(page.clip.checked, timeout=300_000) as checked:
        page.clip.check()
    assert checked.args[0] is True and "clip.safetensors (1 tensors)" in page.clip.note.text()
    assert wiz._clip()["clip_weights"] == str(good) and settings.clip_weights == str(good)
    # "The catalog's own tags" needs no CLIP: the row goes away
    page.keywords.setCurrentIndex(page.keywords.findData("catalog-tags"))
    assert not page.clip.isVisibleTo(page)


def test_core_messages_reach_the_user_in_the_apps_words(monkeypatch):
    from core.features import keywords
    from gui.wording import for_the_app
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(keywords.ClipUnavailable) as e:
        keywords._pretrained_file("ViT-B-32", "laion2b_s34b_b79k")
    assert "--clip-weights" in str(e.value)
    said = for_the_app(str(e.value))
    assert "--" not in said and "Choose a local CLIP weights file" in said
    assert for_the_app("run 'x' already exists in /ws/runs; use --resume to continue it or --run to name "
                       "a new one").endswith("tick “Resume last run” to continue it, or give a new run name")


# ---- Linux desktop: the xcb plugin's libraries ---------------------------------------------------------
def test_missing_xcb_libraries_are_named_with_the_install_command(tmp_path):
    """The real check on this machine, through the real entry point: where libraries are
    missing, `msm4sr-studio` prints the apt line and exits instead of Qt aborting."""
    from gui import xcb_check
    assert xcb_check.package_for("libxcb-cursor.so.0") == "libxcb-cursor0"
    assert xcb_check.package_for("libxkbcommon-x11.so.0") == "libxkbcommon-x11-0"
    missing = xcb_check.missing_libraries()
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "DISPLAY": ":99", "HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", "import sys; from gui.app import main; sys.exit(main(['--timing']))"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    if missing:
        assert r.returncode == 3, r.stderr
        assert xcb_check.install_command(missing) in r.stderr
        assert "sudo apt install " in r.stderr and "could not load the Qt platform plugin" not in r.stderr
    else:
        # nothing missing: no message from the check (the display :99 itself does not exist)
        assert "sudo apt install" not in r.stderr
    assert not xcb_check.uses_xcb({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":0"})
    assert xcb_check.uses_xcb({"DISPLAY": ":0"}, platform="linux")
    assert not xcb_check.uses_xcb({"DISPLAY": ":0"}, platform="darwin")
