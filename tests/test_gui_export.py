"""Export from the main window on a real tiny trained model: recommendations and the
sequence as CSV/JSON, attention maps as PNG/SVG/CSV, training curves as PNG/CSV and the item
map as PNG; every file is read back. Also checks that the explore panels are in the window
(Similar tab, explanation, Map dock, File › Compare models / Export) and the right-click exports."""
from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QFileDialog

from gui_support import close_window, save_shot
from gui_tiny import model, rec  # noqa: F401 - shared fixtures

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


@pytest.fixture
def win(qtbot, tmp_path, model):
    from gui.app import MainWindow
    from gui.settings import Settings
    from gui.state import Session
    w = MainWindow(Session(), Settings(QSettings(str(tmp_path / "studio.ini"), QSettings.IniFormat)))
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    qtbot.waitUntil(lambda: w.panels_ready, timeout=60000)
    w.map.method.setCurrentText("pca")            # UMAP's first run takes a minute on two cores
    with qtbot.waitSignal(w.modelLoaded, timeout=60000):
        assert w.open_workspace(model[0])
        w.load_model(model[1])
    seqs = w.session.ws.sequences()
    with qtbot.waitSignal(w.recommendations.resultsShown, timeout=30000):
        w.sequence.set_ids(seqs[sorted(seqs)[1]][:6])
    qtbot.waitUntil(lambda: bool(w.attention.maps) and not w.attention.busy, timeout=30000)
    w.docks["Map"].raise_()   # a map behind another tab is not computed until shown
    qtbot.waitUntil(lambda: w.map.data is not None, timeout=60000)
    yield w
    close_window(w)


def test_explore_panels_are_in_the_window(qtbot, win):
    from gui.similar import SimilarPanel
    tabs = win.docks["Inspector"].widget()
    assert [tabs.tabText(k) for k in range(tabs.count())] == ["Item", "Similar"]
    assert isinstance(tabs.widget(1), SimilarPanel) and tabs.widget(0) is win.inspector
    assert win.docks["Map"].widget() is win.map and win.map.points_drawn() == len(win.map.data)
    qtbot.waitUntil(lambda: win.explain.explanation is not None, timeout=30000)
    assert win.explain.target == win.recommendations.results[0][0]
    assert win.map.top == [i for i, _ in win.recommendations.results]     # rings follow the list
    assert set(win.export_actions) == {"Recommendations", "Sequence", "Attention maps",
                                       "Training curves", "Item map"}
    dlg = win.act_compare.trigger() or win.compare
    assert dlg.isVisible() and dlg.ticked()
    dlg.close()
    win.docks["Map"].raise_()
    qtbot.wait(100)
    save_shot(win, "main_explore.png")


def _export(qtbot, monkeypatch, win, name, path):
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(path), ""))
    win.export_actions[name].trigger()
    assert path.is_file(), win.message.text()
    assert "exported" in win.message.text()
    return path


def test_recommendations_and_sequence(qtbot, monkeypatch, win, tmp_path):
    results = win.recommendations.results
    rows = list(csv.DictReader(open(_export(qtbot, monkeypatch, win, "Recommendations", tmp_path / "r.csv"))))
    assert [(r["item_id"], float(r["score"])) for r in rows] == [(i, pytest.approx(s, abs=1e-5)) for i, s in results]
    assert list(rows[0]) == ["rank", "item_id", "title", "score"]      # as `msm4sr recommend --format csv`
    got = json.loads(_export(qtbot, monkeypatch, win, "Recommendations", tmp_path / "r.json").read_text())
    assert got["sequence"] == win.session.sequence
    assert [r["item"] for r in got["recommendations"]] == [i for i, _ in results]
    seq = win.session.sequence
    rows = list(csv.DictReader(open(_export(qtbot, monkeypatch, win, "Sequence", tmp_path / "s.csv"))))
    assert [r["item_id"] for r in rows] == seq and rows[0]["title"] == win.session.ws.item(seq[0]).title
    got = json.loads(_export(qtbot, monkeypatch, win, "Sequence", tmp_path / "s.json").read_text())
    assert got["sequence"] == seq


def test_attention_maps(qtbot, monkeypatch, win, tmp_path):
    att = win.attention
    png = QImage(str(_export(qtbot, monkeypatch, win, "Attention maps", tmp_path / "a.png")))
    assert not png.isNull() and png.width() >= 600
    root = ET.parse(_export(qtbot, monkeypatch, win, "Attention maps", tmp_path / "a.svg")).getroot()
    assert root.tag.endswith("svg")
    assert any(e.tag.endswith(("image", "path", "polyline")) for e in root.iter())   # something drawn
    rows = list(csv.DictReader(open(_export(qtbot, monkeypatch, win, "Attention maps", tmp_path / "a.csv"))))
    maps = att.selected_maps()
    n = len(att.ids)
    assert len(rows) == len(maps) * n * n
    caption, mat = maps[0]
    first = [r for r in rows if r["map"] == caption]
    assert [float(r["weight"]) for r in first] == pytest.approx(mat.reshape(-1).tolist(), abs=1e-5)
    assert first[1]["query_item"] == att.ids[0] and first[1]["key_item"] == att.ids[1]


def test_training_curves_and_item_map(qtbot, monkeypatch, win, tmp_path):
    plots = win.training.plots
    plots.add_history([{"event": "step", "stage": "finetune", "losses": {"nip": 2.0 - 0.1 * k}}
                       for k in range(5)] + [{"event": "epoch", "stage": "finetune", "valid": {"ndcg@10": 0.1}}])
    plots.redraw()
    rows = list(csv.DictReader(open(_export(qtbot, monkeypatch, win, "Training curves", tmp_path / "t.csv"))))
    loss = [r for r in rows if r["plot"] == "loss"]
    assert [float(r["y"]) for r in loss] == pytest.approx([2.0 - 0.1 * k for k in range(5)])
    assert [r for r in rows if r["plot"] == "validation"][0]["curve"] == "finetune ndcg@10"
    assert not QImage(str(_export(qtbot, monkeypatch, win, "Training curves", tmp_path / "t.png"))).isNull()
    img = QImage(str(_export(qtbot, monkeypatch, win, "Item map", tmp_path / "m.png")))
    assert not img.isNull() and img.width() >= 600
    colours = {img.pixel(x * (img.width() - 1) // 20, y * (img.height() - 1) // 20)
               for x in range(21) for y in range(21)}
    assert len(colours) > 2                          # points, not a blank canvas


def test_right_click_menus_carry_the_exports(qtbot, win):
    texts = [a.text() for a in win.recommendations.list.actions()]
    assert "Export recommendations…" in texts
    # the list's own right-click menu (gui/context_menus.py) ends with them
    menu = win.recommendations.menu_for([win.recommendations.results[0][0]])
    assert [a.text() for a in menu.actions()][-2:] == ["Export recommendations…", "Export sequence…"]
    assert win.recommendations.list.contextMenuPolicy() == Qt.CustomContextMenu
    for view, text in ((win.attention.view, "Export attention maps…"), (win.map.plot, "Export item map…"),
                       (win.training.plots.loss_plot, "Export training curves…")):
        assert text in [a.text() for a in view.scene().contextMenu]


def test_export_with_nothing_on_screen_says_why(qtbot, monkeypatch, win, tmp_path):
    win.sequence.clear()
    qtbot.waitUntil(lambda: not win.attention.maps and not win.attention.busy, timeout=30000)
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "x.csv"), ""))
    win.export_actions["Attention maps"].trigger()
    assert not (tmp_path / "x.csv").exists() and "no attention maps" in win.message.text()
