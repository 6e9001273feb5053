"""Main window smoke test, inspector, import wizard, launch with --screenshot, and a monkey test."""
from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QApplication, QDockWidget, QLabel, QWizard

from core.workspace import Workspace
from gui.app import MainWindow, demo_sequence, install_excepthook, unique_keys
from gui.settings import Settings
from gui.state import Session
from gui.workers import wait_all
from gui_support import ml1m_workspace, save_shot

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ml_ws(ml1m, tmp_path_factory):
    return ml1m_workspace(ml1m, tmp_path_factory.mktemp("ml") / "ws", n_items=150, max_rows=30000)


@pytest.fixture
def settings(tmp_path):
    return Settings(QSettings(str(tmp_path / "studio.ini"), QSettings.IniFormat))


@pytest.fixture
def window(qtbot, settings):
    win = MainWindow(Session(), settings)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    win.activateWindow()
    qtbot.waitExposed(win)
    yield win
    win.close()
    wait_all()
    QApplication.processEvents()       # deliver the last worker results before the database closes
    if win.session.ws is not None:
        win.session.ws.close()


def open_ws(qtbot, win, path):
    assert win.open_workspace(path)
    qtbot.waitUntil(lambda: win.catalog.loaded, timeout=15000)


def shortcut(qtbot, win, key, mods=Qt.ControlModifier):
    """Press a key chord the way a user does: to the focused widget of the active window."""
    target = QApplication.focusWidget() or win
    qtbot.keyClick(target, key, mods)


@pytest.mark.realdata
def test_main_window_docks_menus_shortcuts(qtbot, window, ml_ws):
    win = window
    open_ws(qtbot, win, ml_ws)
    assert win.windowTitle() == "MSM4SR Studio — ws"
    assert set(win.docks) == {"Sequence", "Inspector", "Recommendations", "Attention", "Training", "Map"}
    # read now: an info message clears after 8 s, and the panels can take longer on a loaded machine
    assert "150 items" in win.message.text() and win.model_label.text().startswith("model: none")
    qtbot.waitUntil(lambda: win.panels_ready, timeout=30000)   # pyqtgraph panels come after the window
    for name, dock in win.docks.items():
        assert isinstance(dock, QDockWidget) and dock.widget() is not None
        assert not isinstance(dock.widget(), QLabel), f"{name} is a placeholder"
    import gc
    assert gc.get_freeze_count() > 10_000   # the imports' objects are out of full collections
    assert not win.banner.isVisible()                 # not the demo

    # Ctrl+F focuses the search box; typing there filters
    shortcut(qtbot, win, Qt.Key_F)
    assert QApplication.focusWidget() is win.catalog.search
    qtbot.keyClicks(win.catalog.search, "toy story")
    win.catalog.apply_search()
    assert [win.catalog.model.item_id(r) for r in range(win.catalog.model.rowCount())] == ["1"]
    # Delete in the search box edits the text, it does not remove sequence items
    win.sequence.append(["2"])
    win.catalog.search.setCursorPosition(0)
    qtbot.keyClick(win.catalog.search, Qt.Key_Delete)
    assert win.catalog.search.text() == "oy story" and win.session.sequence == ["2"]

    # double-click in the grid appends (undoably)
    idx = win.catalog.model.index(0)
    at = win.catalog.view.visualRect(idx).center()
    qtbot.mouseClick(win.catalog.view.viewport(), Qt.LeftButton, pos=at)
    qtbot.mouseDClick(win.catalog.view.viewport(), Qt.LeftButton, pos=at)
    assert win.session.sequence == ["2", "1"]
    assert win.inspector.title.text() == "Toy Story (1995)"
    # Ctrl+Z / Ctrl+Shift+Z from anywhere in the window
    shortcut(qtbot, win, Qt.Key_Z)
    assert win.session.sequence == ["2"]
    shortcut(qtbot, win, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    assert win.session.sequence == ["2", "1"]
    shortcut(qtbot, win, Qt.Key_Z)
    shortcut(qtbot, win, Qt.Key_Y)                    # Ctrl+Y redoes too
    assert win.session.sequence == ["2", "1"]
    keys = [k.toString() for k in win.act_redo.shortcuts()]
    assert len(keys) == len(set(keys)) and {"Ctrl+Shift+Z", "Ctrl+Y"} <= set(keys)
    # Delete with focus in the sequence removes the selected item
    win.sequence.view.setFocus()
    win.sequence.view.setCurrentIndex(win.sequence.model.index(0))
    qtbot.keyClick(win.sequence.view, Qt.Key_Delete)
    assert win.session.sequence == ["1"]
    # Ctrl+N opens the new-item dialog
    with qtbot.waitSignal(win.sequence.dialogOpened) as opened:
        shortcut(qtbot, win, Qt.Key_N)
    opened.args[0].reject()
    # menus hold the main actions with their shortcuts
    menus = {a.text().replace("&", ""): a.menu() for a in win.menuBar().actions()}
    assert set(menus) == {"File", "Sequence", "View", "Help"}
    file_actions = [a.text().replace("&", "") for a in menus["File"].actions() if a.text()]
    assert file_actions == ["Open workspace…", "Import catalog…", "Models…", "Compare models…", "Export", "Quit"]
    assert win.act_import.shortcut().toString() == "Ctrl+I"
    assert win.act_save.shortcut().toString() == "Ctrl+S"
    view_toggles = [a.text() for a in menus["View"].actions() if a.isCheckable()]
    assert sorted(view_toggles) == sorted(win.docks)

    qtbot.waitUntil(lambda: win.catalog.thumbs.idle() and win.sequence.thumbs.idle(), timeout=10000)
    win.session.select("1")
    qtbot.waitUntil(lambda: "popularity rank" in win.inspector.stats.text(), timeout=10000)
    qtbot.wait(200)
    save_shot(win, "main_window.png")


def test_a_key_bound_twice_is_kept_once(qapp):
    from PySide6.QtGui import QKeySequence
    platform = [QKeySequence("Ctrl+Shift+Z"), QKeySequence()]   # as GNOME's Redo binds it
    keys = unique_keys([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")], platform)
    assert [k.toString() for k in keys] == ["Ctrl+Shift+Z", "Ctrl+Y"]


@pytest.mark.realdata
def test_layout_is_restored_and_errors_are_messages(qtbot, settings, ml_ws, tmp_path):
    win = MainWindow(Session(), settings)
    qtbot.addWidget(win)
    win.resize(1234, 777)
    win.show()
    win.docks["Training"].hide()
    win.close()
    win2 = MainWindow(Session(), settings)
    qtbot.addWidget(win2)
    win2.show()
    # (the offscreen screen is 800x600, so the size itself is clamped here; the settings test
    # checks a window that fits)
    assert settings.q.value("window/geometry") is not None
    assert not win2.docks["Training"].isVisible() and win2.docks["Sequence"].isVisible()
    # a folder that is not a workspace is a message, not a crash
    assert not win2.open_workspace(tmp_path / "nothing")
    assert "not a workspace" in win2.message.text()
    assert win2._errors is not None and win2._errors.isVisible() and not win2._errors.isModal()
    win2._errors.close()
    # an unexpected exception reaches the status bar through the excepthook
    old = sys.excepthook
    try:
        sys.excepthook = lambda *exc: None       # stands for the interpreter's default (stderr)
        install_excepthook(win2)
        try:
            raise RuntimeError("boom in a slot")
        except RuntimeError:
            sys.excepthook(*sys.exc_info())
    finally:
        sys.excepthook = old
    assert "boom in a slot" in win2.message.text()
    assert settings.last_workspace == ""          # the failed open changed nothing
    assert win2.open_workspace(ml_ws) and settings.last_workspace == str(ml_ws)
    qtbot.waitUntil(lambda: win2.catalog.loaded, timeout=15000)
    # a checkpoint that cannot be loaded: a message and a label, the window goes on
    bad = tmp_path / "bad_model"
    bad.mkdir()
    (bad / "manifest.json").write_text("{not json")
    win2._errors = None
    with qtbot.waitSignal(win2.modelLoaded, timeout=60000) as loaded:
        win2.load_model(bad)
        assert win2.model_label.text().startswith("loading model")
    assert loaded.args == [None] and win2.session.recommender is None
    assert win2.model_label.text() == "model: failed to load"
    assert "Could not load the model" in win2.message.text() and win2._errors.isVisible()
    wait_all()
    win2.session.ws.close()


@pytest.mark.realdata
def test_inspector_keywords_and_missing_clip(qtbot, window, ml_ws, tmp_path):
    win = window
    open_ws(qtbot, win, ml_ws)
    ins = win.inspector
    win.session.select("1")
    assert ins.title.text() == "Toy Story (1995)"
    assert "Animation, Children's, Comedy" in ins.meta.text()
    bars = [w for w in ins.findChildren(QWidget_) if type(w).__name__ == "KeywordBars"]
    assert bars and [w for w, _ in bars[0].words] == ["animation", "children's", "comedy"]
    def labels():
        return " ".join(l.text() for l in ins.findChildren(QLabel) if l.isVisible())
    qtbot.waitUntil(lambda: "catalog tags" in labels(), timeout=2000)
    qtbot.waitUntil(lambda: ins.image.pixmap() is not None and not ins.image.pixmap().isNull(), timeout=10000)
    qtbot.waitUntil(lambda: "rank" in ins.stats.text(), timeout=10000)
    assert not ins.clip_box.isVisible()            # keywords exist, nothing to nag about
    save_shot(ins, "inspector.png")

    # a workspace whose build found no CLIP weights says so and offers both ways out
    ws_path = tmp_path / "noclip"
    with Workspace.create(ws_path) as ws:
        ws.set_meta("image_modality", {"available": False, "reason": "CLIP weights for ViT-B-32 are not available"})
    open_ws(qtbot, win, ws_path)
    assert ins.clip_box.isVisible()
    assert "CLIP weights for ViT-B-32 are not available" in ins.clip_note.text()
    assert ins.choose_weights.text() == "Choose weights file…" and ins.download.text() == "Let open_clip download"
    save_shot(ins, "inspector_no_clip.png")
    # the build really runs on a worker; this workspace has no items, so it fails plainly
    with qtbot.waitSignal(win.session.message, timeout=60000,
                          check_params_cb=lambda level, text: level == "error") as msg:
        ins.use_weights_file(str(tmp_path / "clip.safetensors"))
        assert ins.building and not ins.download.isEnabled()
    assert "no items" in msg.args[1]
    assert win.settings.clip_weights == str(tmp_path / "clip.safetensors")
    assert not ins.building and ins.download.isEnabled()
    with qtbot.waitSignal(win.session.message, timeout=60000,
                          check_params_cb=lambda level, text: level == "error"):
        qtbot.mouseClick(ins.download, Qt.LeftButton)
    assert win.settings.clip_weights == ""


from PySide6.QtWidgets import QWidget as QWidget_  # noqa: E402


def small_movielens(ml1m, folder: Path, n_movies=60, n_rows=6000) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    keep = []
    with open(ml1m / "movies.dat", encoding="latin-1") as f, \
            open(folder / "movies.dat", "w", encoding="latin-1") as out:
        for line in f:
            keep.append(line.split("::")[0])
            out.write(line)
            if len(keep) >= n_movies:
                break
    keep_set = set(keep)
    n = 0
    with open(ml1m / "interactions.tsv") as f, open(folder / "ratings.dat", "w") as out:
        next(f)
        for line in f:
            u, i, t = line.rstrip("\n").split("\t")
            if i in keep_set:
                out.write(f"{u}::{i}::4::{t}\n")
                n += 1
                if n >= n_rows:
                    break
    return folder


def drive_wizard(qtbot, wiz, files: dict, target: Path, kcore=2, features=False):
    wiz.show()
    wiz.format_page.set_format("movielens")
    wiz.next()
    for k, v in files.items():
        wiz.files_page.set_value(k, v)
    assert wiz.button(QWizard.NextButton).isEnabled()
    wiz.next()
    wiz.options_page.kcore.setValue(kcore)
    wiz.options_page.features.setChecked(features)
    wiz.options_page.target.setText(str(target))
    assert wiz.options_page.isComplete()
    with qtbot.waitSignal(wiz.finishedImport, timeout=60000) as done:
        wiz.next()
    return done.args[0]


@pytest.mark.realdata
def test_import_wizard_imports_and_opens(qtbot, window, ml1m, tmp_path):
    win = window
    src = small_movielens(ml1m, tmp_path / "src")
    from gui.import_wizard import ImportWizard
    wiz = ImportWizard(win.session, win.settings, win)
    qtbot.addWidget(wiz)
    # files must exist before Next is possible
    wiz.show()
    wiz.format_page.set_format("movielens")
    wiz.next()
    wiz.files_page.set_value("movies", str(tmp_path / "missing.dat"))
    assert not wiz.files_page.isComplete() and "no such file" in wiz.files_page.problem.text()
    wiz.back()
    ok = drive_wizard(qtbot, wiz, {"movies": src / "movies.dat", "ratings": src / "ratings.dat",
                                   "posters": ml1m / "posters"}, tmp_path / "new_ws")
    assert ok, wiz.run_page.log.toPlainText()
    assert "interactions" in wiz.run_page.log.toPlainText()
    save_shot(wiz, "import_wizard_done.png")
    with qtbot.waitSignal(wiz.imported) as imported:
        wiz.accept()
    assert imported.args[0] == str((tmp_path / "new_ws").resolve())
    with Workspace.open(tmp_path / "new_ws") as ws:
        counts = ws.counts()
    assert counts["items"] > 10 and counts["interactions"] > 1000 and counts["items_with_image"] > 10
    # the wizard holds out cold-start items by default, as `msm4sr import` does
    from core.cli_import import COLD_SHARE
    assert wiz.options_page.cold.value() == COLD_SHARE > 0
    with Workspace.open(tmp_path / "new_ws") as ws:
        cold = ws.db.execute("SELECT COUNT(*) FROM items WHERE cold=1").fetchone()[0]
    assert cold == round(COLD_SHARE * counts["items"])


def test_import_wizard_shows_errors_plainly(qtbot, window, tmp_path):
    from gui.import_wizard import ImportWizard
    (tmp_path / "ratings.dat").write_text("1::2::3::4\nthis line is not a rating\n")
    wiz = ImportWizard(window.session, window.settings, window)
    qtbot.addWidget(wiz)
    ok = drive_wizard(qtbot, wiz, {"ratings": tmp_path / "ratings.dat"}, tmp_path / "bad_ws", kcore=0)
    assert not ok
    log = wiz.run_page.log.toPlainText()
    assert "ratings.dat" in log and "Nothing was stored" in log
    assert not (tmp_path / "bad_ws").exists()          # no half-made workspace left behind
    assert not wiz.button(QWizard.FinishButton).isEnabled() and wiz.button(QWizard.BackButton).isEnabled()
    save_shot(wiz, "import_wizard_error.png")


@pytest.mark.slow
def test_demo_workspace_in_the_window(qtbot, window, built_demo, tmp_path, monkeypatch):
    """The built-in demo as the app opens it: found on a worker, banner, demo sequence and the
    shipped model (committed, so it must load). On a copy of this session's freshly built demo
    in a temporary $MSM4SR_DEMO_DIR, never the user's data folder or a demo of older code."""
    import shutil
    from gui.app import DEMO_MODEL
    mine = tmp_path / "demo"
    shutil.copytree(built_demo[0], mine)
    monkeypatch.setenv("MSM4SR_DEMO_DIR", str(mine))
    win = window
    opened = []
    win.workspaceOpened.connect(opened.append)
    with qtbot.waitSignal(win.modelLoaded, timeout=600000) as loaded:
        win.open_demo()
        assert "preparing the demo" in win.message.text()
    assert opened == [str(mine)]
    assert loaded.args[0] == str(DEMO_MODEL), win.message.text()
    assert win.session.recommender is not None and win.session.model_path == DEMO_MODEL
    qtbot.waitUntil(lambda: win.catalog.loaded, timeout=15000)
    assert win.banner.isVisible() and "simulated" in win.banner.text()
    assert len(win.session.sequence) >= 4 and win.sequence.undo_stack.count() == 1
    win.session.select(win.session.sequence[-1])
    qtbot.waitUntil(lambda: win.inspector.keywords_box.count() >= 2, timeout=5000)
    assert any("catalog tags" in (win.inspector.keywords_box.itemAt(k).widget().text()
                                  if hasattr(win.inspector.keywords_box.itemAt(k).widget(), "text") else "")
               for k in range(win.inspector.keywords_box.count()))
    assert "demo" in win.model_label.text()
    qtbot.waitUntil(lambda: len(win.recommendations.results) > 0, timeout=60000)
    assert not set(i for i, _ in win.recommendations.results) & set(win.session.sequence)
    qtbot.waitUntil(lambda: win.catalog.thumbs.idle(), timeout=10000)
    qtbot.wait(300)
    save_shot(win, "main_demo.png")


@pytest.mark.realdata
def test_demo_sequence_choice(ml_ws, tmp_path):
    with Workspace.open(ml_ws) as ws:
        seq = demo_sequence(ws)
        assert len(seq) == 5 and all(ws.item(i) for i in seq)
    import shutil
    shutil.copytree(ml_ws, tmp_path / "ws")
    with Workspace.open(tmp_path / "ws") as ws:
        ws.save_sequence("demo", ["3", "2", "1"])
        assert demo_sequence(ws) == ["3", "2", "1"]


@pytest.mark.realdata
def test_launch_with_screenshot(ml_ws, tmp_path):
    out = tmp_path / "shot.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "cfg"),
               HOME=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "gui.app", str(ml_ws), "--screenshot", str(out), "--timing"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "launch_to_shown_s" in r.stderr
    from PIL import Image
    with Image.open(out) as im:
        assert im.size[0] >= 1200 and im.size[1] >= 800


@pytest.mark.realdata
def test_monkey(qtbot, window, ml_ws):
    """A few hundred random user actions; any exception in a Qt callback fails the test."""
    win = window
    open_ws(qtbot, win, ml_ws)
    rng = random.Random(7)
    cat, seq = win.catalog, win.sequence
    words = ["the", "toy", "war", "love", "x", "", "1995", "comedy", "zz"]
    categories = [cat.category.itemData(k) for k in range(cat.category.count())]

    def n_rows():
        return cat.model.rowCount()

    actions = {
        "select": lambda: n_rows() and win.session.select(cat.model.item_id(rng.randrange(n_rows()))),
        "search": lambda: (cat.search.setText(rng.choice(words)), cat.apply_search()),
        "filter": lambda: cat.category.setCurrentIndex(rng.randrange(len(categories))),
        "sort": lambda: cat.sort.setCurrentIndex(rng.randrange(cat.sort.count())),
        "add": lambda: n_rows() and seq.insert([cat.model.item_id(rng.randrange(n_rows()))],
                                               rng.randrange(len(win.session.sequence) + 1)),
        "drop": lambda: n_rows() and seq.handle_drop(
            cat.model.mimeData([cat.model.index(rng.randrange(n_rows()))]), len(win.session.sequence)),
        "remove": lambda: win.session.sequence and seq.remove_rows([rng.randrange(len(win.session.sequence))]),
        "move": lambda: win.session.sequence and seq.move_rows(
            [rng.randrange(len(win.session.sequence))], rng.randrange(len(win.session.sequence) + 1)),
        "undo": lambda: seq.undo_stack.undo(),
        "redo": lambda: seq.undo_stack.redo(),
        "key": lambda: qtbot.keyClick(cat.view, rng.choice([Qt.Key_Right, Qt.Key_Down, Qt.Key_End, Qt.Key_Home])),
        "resize": lambda: win.resize(rng.randrange(700, 1600), rng.randrange(500, 1000)),
        "scroll": lambda: cat.view.verticalScrollBar().setValue(
            rng.randrange(cat.view.verticalScrollBar().maximum() + 1)),
        "dock": lambda: (lambda d: d.setVisible(not d.isVisible()))(rng.choice(list(win.docks.values()))),
    }
    names = sorted(actions)
    history = []
    with qtbot.captureExceptions() as errors:
        for step in range(300):
            name = rng.choice(names)
            history.append(name)
            actions[name]()
            if step % 10 == 0:
                QApplication.processEvents()
        qtbot.wait(100)
        # the undo stack reproduces the sequence the session holds
        seq.undo_stack.setIndex(seq.undo_stack.count())
        final = list(win.session.sequence)
        seq.undo_stack.setIndex(0)
        assert win.session.sequence == []
        seq.undo_stack.setIndex(seq.undo_stack.count())
        assert win.session.sequence == final
        assert seq.model.ids == final
    assert not errors, f"{errors[0][1]!r} after {history[-5:]}"
