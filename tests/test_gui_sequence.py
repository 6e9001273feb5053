"""Sequence builder: drops from the catalog, reordering, delete, undo/redo, new items from image files."""
from __future__ import annotations

import shutil

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QSplitter

from core.workspace import Workspace
from gui.catalog import MIME_ITEMS, CatalogPanel
from gui.sequence import MIME_ROWS, NewItemDialog, SequencePanel
from gui.state import Session
from gui.workers import wait_all
from gui_support import ml1m_workspace, save_shot

pytestmark = pytest.mark.realdata      # ../shared/datasets


@pytest.fixture(scope="module")
def ml_ws_template(ml1m, tmp_path_factory):
    return ml1m_workspace(ml1m, tmp_path_factory.mktemp("ml") / "ws", n_items=120, max_rows=20000)


@pytest.fixture
def ui(qtbot, ml_ws_template, tmp_path):
    """A catalog and a sequence on one session over a private copy of the workspace."""
    ws_path = tmp_path / "ws"
    shutil.copytree(ml_ws_template, ws_path)
    session = Session()
    messages = []
    session.message.connect(lambda level, text: messages.append((level, text)))
    split = QSplitter()
    catalog = CatalogPanel(session)
    seq = SequencePanel(session)
    split.addWidget(seq)
    split.addWidget(catalog)
    split.resize(1100, 700)
    qtbot.addWidget(split)
    split.show()
    session.open_workspace(ws_path)
    qtbot.waitUntil(lambda: catalog.loaded, timeout=10000)
    catalog.set_sort("id")
    yield session, catalog, seq, messages
    wait_all()
    session.ws.close()


def drop(widget, mime: QMimeData, pos: QPoint, action=Qt.CopyAction) -> QDropEvent:
    """Deliver drag-enter, drag-move and drop events, as a real drag does, to a view's viewport."""
    p = QPointF(pos)  # QDropEvent takes QPointF; the drag events take QPoint, as in C++
    buttons, mods = Qt.LeftButton, Qt.NoModifier
    enter = QDragEnterEvent(QPoint(pos), Qt.CopyAction | Qt.MoveAction, mime, buttons, mods)
    QApplication.sendEvent(widget, enter)
    move = QDragMoveEvent(QPoint(pos), Qt.CopyAction | Qt.MoveAction, mime, buttons, mods)
    QApplication.sendEvent(widget, move)
    ev = QDropEvent(p, Qt.CopyAction | Qt.MoveAction, mime, buttons, mods)
    ev.setDropAction(action)
    QApplication.sendEvent(widget, ev)
    return ev


def end_of(seq) -> QPoint:
    """A point in the empty area below the last row (drops there append)."""
    vp = seq.view.viewport()
    return QPoint(vp.width() // 2, vp.height() - 5)


def row_point(seq, row: int, upper: bool = True) -> QPoint:
    r = seq.view.visualRect(seq.model.index(row))
    return QPoint(r.center().x(), r.top() + 2 if upper else r.bottom() - 2)


def catalog_drag(catalog, rows):
    return catalog.model.mimeData([catalog.model.index(r) for r in rows])


def test_drag_from_catalog_then_reorder_delete_undo_redo(qtbot, ui):
    session, catalog, seq, _ = ui
    ids = [catalog.model.item_id(r) for r in range(6)]
    ev = drop(seq.view.viewport(), catalog_drag(catalog, [0, 1, 2]), end_of(seq))
    assert ev.isAccepted()
    assert session.sequence == ids[:3]
    assert seq.model.rowCount() == 3 and "Toy Story" in seq.model.data(seq.model.index(0))
    # a drop onto the upper half of row 1 inserts before it
    drop(seq.view.viewport(), catalog_drag(catalog, [4]), row_point(seq, 1, upper=True))
    assert session.sequence == [ids[0], ids[4], ids[1], ids[2]]
    # internal move: drag row 0 (as the view would package it) below the last row
    mime = seq.model.mimeData([seq.model.index(0)])
    assert mime.hasFormat(MIME_ROWS) and mime.hasFormat(MIME_ITEMS)
    ev = drop(seq.view.viewport(), mime, end_of(seq), Qt.MoveAction)
    assert session.sequence == [ids[4], ids[1], ids[2], ids[0]]
    assert ev.dropAction() == Qt.CopyAction       # so the source never deletes the moved rows
    # move two rows up to the top
    mime = seq.model.mimeData([seq.model.index(2), seq.model.index(3)])
    drop(seq.view.viewport(), mime, row_point(seq, 0, upper=True), Qt.MoveAction)
    assert session.sequence == [ids[2], ids[0], ids[4], ids[1]]

    # Delete key removes the selected rows
    seq.view.setFocus()
    seq.view.setCurrentIndex(seq.model.index(1))
    qtbot.keyClick(seq.view, Qt.Key_Delete)
    assert session.sequence == [ids[2], ids[4], ids[1]]

    # every edit undoes and redoes
    stack = seq.undo_stack
    assert stack.count() == 5
    stack.undo()
    assert session.sequence == [ids[2], ids[0], ids[4], ids[1]]
    stack.undo()
    stack.undo()
    assert session.sequence == [ids[0], ids[4], ids[1], ids[2]]
    stack.redo()
    assert session.sequence == [ids[4], ids[1], ids[2], ids[0]]
    for _ in range(10):
        stack.undo()
    assert session.sequence == []
    save_shot(seq, "sequence_empty.png")
    for _ in range(10):
        stack.redo()
    assert session.sequence == [ids[2], ids[4], ids[1]]
    save_shot(seq, "sequence.png")


def test_double_click_and_unknown_ids(qtbot, ui):
    session, catalog, seq, messages = ui
    catalog.appendRequested.connect(seq.append)
    idx = catalog.model.index(7)
    qtbot.waitUntil(lambda: not catalog.view.visualRect(idx).isEmpty())
    # a real double-click: press/release, then the double-click event
    at = catalog.view.visualRect(idx).center()
    qtbot.mouseClick(catalog.view.viewport(), Qt.LeftButton, pos=at)
    qtbot.mouseDClick(catalog.view.viewport(), Qt.LeftButton, pos=at)
    assert session.sequence == [catalog.model.item_id(7)]
    mime = QMimeData()
    mime.setData(MIME_ITEMS, b'["no-such-item"]')
    drop(seq.view.viewport(), mime, end_of(seq))
    assert session.sequence == [catalog.model.item_id(7)]
    assert any("not in this workspace" in t for _, t in messages)
    mime = QMimeData()
    mime.setData(MIME_ITEMS, b"garbage")
    drop(seq.view.viewport(), mime, end_of(seq))
    assert len(session.sequence) == 1


def png(path, colour=(200, 40, 40), size=(64, 96)):
    from PIL import Image
    Image.new("RGB", size, colour).save(path)
    return path


def test_dropping_an_image_file_creates_a_new_item(qtbot, ui, tmp_path):
    session, catalog, seq, messages = ui
    seq.append([catalog.model.item_id(0)])
    image = png(tmp_path / "red_lamp.png")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(image))])
    with qtbot.waitSignal(seq.dialogOpened, timeout=10000) as opened:
        drop(seq.view.viewport(), mime, row_point(seq, 0, upper=True))
    dlg: NewItemDialog = opened.args[0]
    assert dlg.title.text() == "Red lamp" and dlg.image_path == str(image)
    assert not dlg.preview.pixmap().isNull()
    save_shot(dlg, "new_item_dialog.png")
    dlg.title.setText("Red desk lamp")
    dlg.text.setPlainText("A small red lamp for a desk.")
    with qtbot.waitSignal(seq.itemCreated, timeout=10000) as created:
        dlg.accept()
    new_id = created.args[0]
    assert new_id == "new:1"
    assert session.sequence == [new_id, catalog.model.item_id(0)]   # dropped above row 0
    qtbot.waitUntil(lambda: not seq.busy(), timeout=20000)
    item = session.ws.item(new_id)
    assert item.is_new and item.title == "Red desk lamp" and item.text == "A small red lamp for a desk."
    stored = session.ws.image_path(item)
    assert stored.is_file() and stored.parent == session.ws_path / "images" / "new"
    assert "★ NEW" in seq.model.data(seq.model.index(0))
    # the catalog reloads and shows it
    qtbot.waitUntil(lambda: catalog.model.row_of(new_id) >= 0, timeout=10000)
    assert not any(level == "error" for level, _ in messages), messages
    # undo takes it out of the sequence (the item stays in the catalog)
    seq.undo_stack.undo()
    assert session.sequence == [catalog.model.item_id(0)]


@pytest.mark.parametrize("name,content,expect", [
    ("broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "cannot be added"),
    ("notes.txt", b"just some text", "cannot be added"),
    ("truncated.jpg", None, "cannot be added"),
])
def test_bad_files_give_a_message_and_no_item(qtbot, ui, tmp_path, name, content, expect):
    session, catalog, seq, messages = ui
    path = tmp_path / name
    if content is None:         # a real JPEG cut in half
        from PIL import Image
        Image.new("RGB", (300, 300), (10, 200, 30)).save(tmp_path / "full.jpg", quality=95)
        data = (tmp_path / "full.jpg").read_bytes()
        content = data[: len(data) // 2]
    path.write_bytes(content)
    opened = []
    seq.dialogOpened.connect(opened.append)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    drop(seq.view.viewport(), mime, end_of(seq))
    qtbot.waitUntil(lambda: any(level == "error" for level, _ in messages), timeout=10000)
    error = [t for level, t in messages if level == "error"][0]
    assert name in error and expect in error
    assert not opened and session.sequence == []
    assert session.ws.counts()["new_items"] == 0


def test_web_urls_and_folders_are_refused_plainly(qtbot, ui, tmp_path):
    session, catalog, seq, messages = ui
    mime = QMimeData()
    mime.setUrls([QUrl("https://example.com/a.jpg"), QUrl.fromLocalFile(str(tmp_path))])
    drop(seq.view.viewport(), mime, end_of(seq))
    texts = " ".join(t for _, t in messages)
    assert "only local image files" in texts and "folders cannot be dropped" in texts
    assert session.sequence == []


def test_new_item_dialog_checks_a_chosen_file(qtbot, ui, tmp_path):
    session, catalog, seq, messages = ui
    with qtbot.waitSignal(seq.dialogOpened) as opened:
        seq.new_item_dialog()
    dlg = opened.args[0]
    ok = dlg.buttons.button(dlg.buttons.StandardButton.Ok)
    assert not ok.isEnabled()                 # a title is required
    dlg.title.setText("Text-only item")
    assert ok.isEnabled()
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    dlg.set_image_file(str(bad))
    qtbot.waitUntil(lambda: "cannot be used" in dlg.image_note.text(), timeout=10000)
    assert dlg.image_path is None and ok.isEnabled()
    dlg.set_image_file(str(png(tmp_path / "blue.png", (20, 20, 200))))
    qtbot.waitUntil(lambda: dlg.image_path is not None, timeout=10000)
    with qtbot.waitSignal(seq.itemCreated, timeout=10000):
        ok.click()
    qtbot.waitUntil(lambda: not seq.busy(), timeout=20000)
    assert session.sequence == ["new:1"]
    assert session.ws.item("new:1").image.startswith("images/new/")


def test_save_and_load_named_sequences(qtbot, ui):
    session, catalog, seq, messages = ui
    ids = [catalog.model.item_id(r) for r in (3, 1, 4)]
    seq.set_ids(ids)
    seq.save_as("evening")
    with Workspace.open(session.ws_path) as ws:
        qtbot.waitUntil(lambda: "evening" in ws.sequence_names(), timeout=5000)
        assert ws.load_sequence("evening") == ids
    seq.clear()
    assert session.sequence == []
    seq.load_named("evening")
    assert session.sequence == ids
    seq.load_named("nope")
    assert any(level == "error" and "nope" in t for level, t in messages)
    seq.undo_stack.undo()
    assert session.sequence == []
    seq.save_as("   ")
    assert any("needs a name" in t for _, t in messages)
