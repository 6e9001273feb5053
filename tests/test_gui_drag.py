"""A real drag start: the catalog grid's own startDrag (selection -> model mimeData ->
QDrag.exec) makes the QDrag, and that QDrag's mime data is dropped onto the sequence panel
through real drag-enter/move/drop events."""
from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtGui import QDrag

from gui.catalog import MIME_ITEMS
from test_gui_sequence import drop, end_of, ml_ws_template, ui  # noqa: F401 - fixtures

import pytest

pytestmark = pytest.mark.realdata      # ../shared/datasets


def test_a_drag_started_in_the_grid_drops_onto_the_sequence(qtbot, ui):  # noqa: F811
    session, catalog, seq, _ = ui
    rows = [2, 5]
    sel = catalog.view.selectionModel()
    sel.clearSelection()
    for r in rows:
        sel.select(catalog.model.index(r), QItemSelectionModel.Select)
    want = [catalog.model.item_id(r) for r in rows]
    assert session.sequence == []
    # without a pressed mouse button the offscreen platform ends QDrag.exec at once; the
    # QDrag the view made (its child) is deleted only later, by the event loop
    catalog.view.startDrag(Qt.CopyAction)
    drags = catalog.view.findChildren(QDrag)
    assert len(drags) == 1, "the view's startDrag made no QDrag"
    mime = drags[0].mimeData()
    assert MIME_ITEMS in mime.formats()
    assert drags[0].supportedActions() & Qt.CopyAction
    assert session.sequence == []          # starting a drag adds nothing by itself
    assert drop(seq.view.viewport(), mime, end_of(seq)).isAccepted()
    assert session.sequence == want
    assert [seq.model.data(seq.model.index(k)) for k in range(2)] == \
        [f"{k + 1}. {catalog.model.data(catalog.model.index(r))}" for k, r in enumerate(rows)]
