"""Right-click menus of the catalog grid, the sequence and the recommendations, and
double-click on a recommendation, in the main window on a real tiny trained model: each
action does what it says (the sequence changes through its undo stack, the clipboard holds
the ids, the explanation and the Similar tab get the item), and a right-click shows the
panel's menu for the row under the cursor."""
from __future__ import annotations

import shutil
import time

import pytest
from PySide6.QtCore import QPoint, QSettings, Qt
from PySide6.QtGui import QContextMenuEvent, QGuiApplication
from PySide6.QtWidgets import QApplication, QMessageBox

from gui_support import close_window, save_shot
from gui_tiny import model, rec  # noqa: F401 - shared fixtures

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def _until(cond, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        QApplication.processEvents()
        time.sleep(0.01)


@pytest.fixture(scope="module")
def win(qapp, model, tmp_path_factory):
    """One window for the module (building it loads pyqtgraph and the model), over a private
    copy of the tiny workspace: a test adds and deletes an item."""
    from gui.app import MainWindow
    from gui.settings import Settings
    from gui.state import Session
    ws, ckpt = model
    root = tmp_path_factory.mktemp("menus")
    copy = root / "ws"
    shutil.copytree(ws, copy, ignore=shutil.ignore_patterns("runs", "zz-*"))
    for m in (copy / "models").iterdir():    # other test modules add models to the shared workspace
        if m.name != ckpt.name:
            shutil.rmtree(m)
    w = MainWindow(Session(), Settings(QSettings(str(root / "studio.ini"), QSettings.IniFormat)))
    w.resize(1400, 900)
    w.show()
    _until(lambda: w.panels_ready)
    w.map.method.setCurrentText("pca")        # UMAP's first run takes a minute on two cores
    assert w.open_workspace(copy)
    w.load_model(copy / "models" / ckpt.name)
    _until(lambda: w.session.recommender is not None)
    yield w
    close_window(w)
    w.deleteLater()


@pytest.fixture
def seq6(qtbot, win):
    """A six-item history on screen with its recommendations; an empty undo stack."""
    seqs = win.session.ws.sequences()
    ids = seqs[sorted(seqs)[1]][:6]
    win.session.set_sequence([])
    win.sequence.undo_stack.clear()
    with qtbot.waitSignal(win.recommendations.resultsShown, timeout=30000):
        win.sequence.set_ids(ids)
    qtbot.waitUntil(lambda: not win.recommendations.busy, timeout=30000)
    return ids


def texts(menu) -> list[str]:
    return [a.text() for a in menu.actions() if not a.isSeparator()]


def act(menu, start: str):
    got = [a for a in menu.actions() if a.text().startswith(start)]
    assert len(got) == 1, (start, texts(menu))
    return got[0]


def test_catalog_menu_adds_all_selected_copies_and_explains(qtbot, win, seq6):
    cat, s = win.catalog, win.session
    results = [i for i, _ in win.recommendations.results]
    # a recommended item and a second one, both chosen in the grid
    target = results[2]
    other = next(i for i in cat.visible_ids() if i not in seq6 and i != target)
    menu = cat.menu_for([other, target], target)
    assert texts(menu) == ["Add to sequence (2 items)", "Show similar items",
                           "Why is it recommended? (rank 3)", "Copy 2 item ids"]
    assert all(a.isEnabled() for a in menu.actions())

    act(menu, "Add to sequence").trigger()
    assert s.sequence == seq6 + [other, target]
    win.act_undo.trigger()                               # one step of the sequence's undo stack
    assert s.sequence == seq6

    act(menu, "Copy").trigger()
    assert QGuiApplication.clipboard().text() == f"{other}\n{target}"

    act(menu, "Why is it recommended?").trigger()
    assert win.explain.target == target
    qtbot.waitUntil(lambda: win.explain.explanation is not None
                    and win.explain.explanation.target == target, timeout=30000)
    assert win.explain.explanation.sequence == seq6

    # an item the model does not rank in the top-k is explained too, under another name
    menu = cat.menu_for([other])
    assert texts(menu) == ["Add to sequence", "Show similar items",
                           "Explain its score for this sequence", "Copy item id"]


def test_show_similar_opens_the_similar_tab_for_the_item(qtbot, win, seq6):
    tabs = win.docks["Inspector"].widget()
    tabs.setCurrentIndex(0)
    item = win.catalog.visible_ids()[5]
    with qtbot.waitSignal(win.similar.shown, timeout=30000):
        act(win.catalog.menu_for([item]), "Show similar items").trigger()
    assert tabs.currentWidget() is win.similar and win.session.selected == item
    assert win.similar.item_id == item and win.similar.list.count() > 0
    assert item not in [n.item_id for n in win.similar.neighbours]


def test_sequence_menu_moves_removes_and_clears_with_undo(qtbot, win, seq6):
    s, sp = win.session, win.sequence
    menu = sp.menu_for([1, 2])
    assert texts(menu) == ["Remove from sequence (2 items)", "Move to start", "Move to end",
                           "Show similar items", "Copy 2 item ids", "Clear sequence"]
    a, b, c, d, e, f = seq6
    act(menu, "Move to start").trigger()
    assert s.sequence == [b, c, a, d, e, f]
    act(sp.menu_for([0]), "Move to end").trigger()
    assert s.sequence == [c, a, d, e, f, b]
    act(sp.menu_for([1, 3]), "Remove").trigger()
    assert s.sequence == [c, d, f, b]
    act(sp.menu_for([2]), "Copy").trigger()
    assert QGuiApplication.clipboard().text() == f
    act(sp.menu_for([]), "Clear sequence").trigger()
    assert s.sequence == [] and "Ctrl+Z" in win.message.text()
    for want in ([c, d, f, b], [c, a, d, e, f, b], [b, c, a, d, e, f], seq6):
        win.act_undo.trigger()
        assert s.sequence == want
    # on empty space only Clear is offered; catalog items have no Delete entry
    assert texts(sp.menu_for([])) == ["Clear sequence"]
    assert not [t for t in texts(sp.menu_for([0])) if t.startswith("Delete")]


def test_sequence_menu_deletes_a_new_item_through_the_panels_own_action(qtbot, win, seq6):
    from gui.new_item import create_item
    s, sp = win.session, win.sequence
    item = create_item(s.ws_path, "A menu test item", "made by test_gui_menus", None)
    s.itemsChanged.emit()
    sp.append([item.id])
    assert s.sequence == seq6 + [item.id]
    menu = sp.menu_for([0, len(seq6)])                    # a catalog item and the new one
    entry = act(menu, "Delete new item from workspace…")
    with qtbot.waitSignal(sp.dialogOpened, timeout=5000) as opened:
        entry.trigger()
    box = opened.args[0]
    assert isinstance(box, QMessageBox) and "A menu test item" in box.text()
    with qtbot.waitSignal(sp.itemsDeleted, timeout=30000) as deleted:
        box.done(QMessageBox.Yes)
    assert deleted.args[0] == [item.id]
    assert s.sequence == seq6 and s.ws.item(item.id) is None


def test_recommendation_menu_keeps_the_exports_and_explains(qtbot, win, seq6):
    rp, s = win.recommendations, win.session
    target = rp.results[3][0]
    menu = rp.menu_for([target])
    assert texts(menu) == ["Add to sequence", "Show similar items", "Explain this recommendation",
                           "Copy item id", "Export recommendations…", "Export sequence…"]
    assert act(menu, "Export recommendations…") in rp.list.actions()    # export.py's own actions

    act(menu, "Explain this recommendation").trigger()
    assert win.explain.target == target
    qtbot.waitUntil(lambda: win.explain.explanation is not None
                    and win.explain.explanation.target == target, timeout=30000)

    act(menu, "Copy item id").trigger()
    assert QGuiApplication.clipboard().text() == target
    act(menu, "Add to sequence").trigger()
    assert s.sequence == seq6 + [target]
    win.act_undo.trigger()
    assert s.sequence == seq6
    # empty space: the exports alone
    assert texts(rp.menu_for([])) == ["Export recommendations…", "Export sequence…"]


def test_double_click_on_a_recommendation_appends_it(qtbot, win, seq6):
    rp, s = win.recommendations, win.session
    row = rp.list.item(1)
    target = row.data(Qt.ItemDataRole.UserRole)
    rect = rp.list.visualItemRect(row)
    # a real double-click: press/release, then the double-click event (QTest's alone has no press)
    qtbot.mouseClick(rp.list.viewport(), Qt.LeftButton, pos=rect.center())
    assert s.sequence == seq6 and s.selected == target         # one click inspects only
    qtbot.mouseDClick(rp.list.viewport(), Qt.LeftButton, pos=rect.center())
    assert s.sequence == seq6 + [target]
    win.act_undo.trigger()
    assert s.sequence == seq6


def _right_click(view, pos: QPoint) -> None:
    """What a right mouse press delivers: a context-menu event on the viewport."""
    vp = view.viewport()
    QApplication.sendEvent(vp, QContextMenuEvent(QContextMenuEvent.Mouse, pos, vp.mapToGlobal(pos)))


def test_right_click_shows_the_menu_of_the_row_under_the_cursor(qtbot, win, seq6):
    rp, cat, sp = win.recommendations, win.catalog, win.sequence
    clip = QGuiApplication.clipboard()

    row = rp.list.item(2)
    _right_click(rp.list, rp.list.visualItemRect(row).center())
    menu = rp.context_menu
    qtbot.waitUntil(menu.isVisible, timeout=5000)
    assert rp.list.selectedItems() == [row]                 # the clicked row is what it acts on
    assert "Explain this recommendation" in texts(menu) and "Export sequence…" in texts(menu)
    save_shot(menu, "menu_recommendations.png")
    act(menu, "Copy item id").trigger()
    assert clip.text() == row.data(Qt.ItemDataRole.UserRole)
    menu.close()

    index = cat.model.index(3)
    _right_click(cat.view, cat.view.visualRect(index).center())
    menu = cat.context_menu
    qtbot.waitUntil(menu.isVisible, timeout=5000)
    assert win.session.selected == cat.model.item_id(3)
    act(menu, "Copy item id").trigger()
    assert clip.text() == cat.model.item_id(3)
    menu.close()
    # Ctrl+click a second item, right-click the first: both are added, in grid order
    qtbot.mouseClick(cat.view.viewport(), Qt.LeftButton, Qt.ControlModifier,
                     cat.view.visualRect(cat.model.index(6)).center())
    _right_click(cat.view, cat.view.visualRect(index).center())
    menu = cat.context_menu
    qtbot.waitUntil(menu.isVisible, timeout=5000)
    act(menu, "Add to sequence (2 items)").trigger()
    assert win.session.sequence == seq6 + [cat.model.item_id(3), cat.model.item_id(6)]
    win.act_undo.trigger()
    menu.close()

    # two rows selected, right-click on one of them: the menu acts on both
    sel = sp.view.selectionModel()
    sel.clearSelection()
    for r in (1, 4):
        sel.select(sp.model.index(r), sel.SelectionFlag.Select)
    _right_click(sp.view, sp.view.visualRect(sp.model.index(4)).center())
    menu = sp.context_menu
    qtbot.waitUntil(menu.isVisible, timeout=5000)
    act(menu, "Move to start").trigger()
    assert win.session.sequence == [seq6[1], seq6[4]] + [x for k, x in enumerate(seq6) if k not in (1, 4)]
    menu.close()
