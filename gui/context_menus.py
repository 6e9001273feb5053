"""Right-click menus of the catalog grid, the sequence and the recommendations, built in one
place so the three panels offer the same entries in the same order.

Each panel has `menu_for(...)`, which returns the QMenu without showing it (tests trigger its
actions), and `install(view, panel.menu_at)` shows it on right-click. The menus only call what
the app already does elsewhere: the sequence panel's undoable edits and its "Delete item…",
`ExplainPanel.set_target`, the Similar tab of the inspector. Panels are found through the
window (`window().sequence`, `.explain`, `.similar`), as gui/similar.py finds the sequence;
an entry whose panel is absent is greyed out."""
from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtGui import QAction, QGuiApplication
from PySide6.QtWidgets import QDockWidget, QMenu, QTabWidget


# ---- what the entries do ------------------------------------------------------------
def _window_part(widget, name: str):
    return getattr(widget.window(), name, None)


def _raise_dock(widget) -> None:
    """Bring the dock holding `widget` to the front (it may be tabbed behind another)."""
    p = widget.parentWidget()
    while p is not None and not isinstance(p, QDockWidget):
        p = p.parentWidget()
    if p is not None:
        p.show()
        p.raise_()


def append_to_sequence(widget, session, ids: list[str]) -> None:
    """Through the sequence panel, so the edit is one undo step; else straight to the session."""
    seq = _window_part(widget, "sequence")
    if seq is not None and hasattr(seq, "append"):
        seq.append(list(ids))
    else:
        session.set_sequence(session.sequence + list(ids))


def copy_ids(ids: list[str]) -> None:
    QGuiApplication.clipboard().setText("\n".join(ids))


def similar_panel(widget):
    sim = _window_part(widget, "similar")
    return sim if sim is not None and hasattr(sim, "neighbours") else None


def show_similar(widget, session, item_id: str) -> None:
    """Inspect the item and open the inspector's Similar tab, which then lists its neighbours."""
    session.select(item_id)
    sim = similar_panel(widget)
    if sim is None:
        return
    tabs = sim.parentWidget()
    while tabs is not None and not isinstance(tabs, QTabWidget):
        tabs = tabs.parentWidget()
    if tabs is not None:
        tabs.setCurrentWidget(sim)
    _raise_dock(sim)
    sim.refresh()


def explain_panel(widget):
    ex = _window_part(widget, "explain")
    return ex if ex is not None and hasattr(ex, "set_target") else None


def can_explain(widget, session) -> bool:
    return explain_panel(widget) is not None and session.recommender is not None and bool(session.sequence)


def explain(widget, item_id: str) -> None:
    ex = explain_panel(widget)
    if ex is not None:
        ex.set_target(item_id)
        _raise_dock(ex)


def rank_in(results, item_id: str) -> int | None:
    for rank, (i, _score) in enumerate(results or (), 1):
        if i == item_id:
            return rank
    return None


# ---- building ------------------------------------------------------------------------
def build_menu(parent, entries) -> QMenu | None:
    """entries: (text, slot, enabled) or None for a separator, or a QAction to reuse.
    No entries: no menu."""
    menu = QMenu(parent)
    for e in entries:
        if e is None:
            if menu.actions() and not menu.actions()[-1].isSeparator():
                menu.addSeparator()
        elif isinstance(e, QAction):
            menu.addAction(e)
        else:
            text, slot, enabled = e
            act = menu.addAction(text)
            act.setEnabled(bool(enabled))
            act.triggered.connect(lambda _=False, f=slot: f())
    if menu.actions() and menu.actions()[-1].isSeparator():
        menu.removeAction(menu.actions()[-1])
    if not menu.actions():
        menu.deleteLater()
        return None
    return menu


def _n(ids) -> str:
    return "" if len(ids) == 1 else f" ({len(ids)} items)"


def item_entries(widget, session, ids: list[str], focus: str | None, add, explain_text=None) -> list:
    """Add to sequence · Show similar · Why/Explain · Copy id: the catalog's and the
    recommendations' common entries. `focus` is the item under the cursor."""
    if not ids:
        return []
    entries = [(f"Add to sequence{_n(ids)}", add, bool(ids) and session.ws is not None), None]
    if focus is not None:
        entries.append(("Show similar items", lambda: show_similar(widget, session, focus),
                        similar_panel(widget) is not None))
        if explain_text:
            entries.append((explain_text, lambda: explain(widget, focus), can_explain(widget, session)))
    entries += [None, ("Copy item id" if len(ids) == 1 else f"Copy {len(ids)} item ids",
                       lambda: copy_ids(ids), bool(ids))]
    return entries


def catalog_menu(panel, ids: list[str], focus: str | None) -> QMenu:
    recs = _window_part(panel, "recommendations")
    rank = rank_in(getattr(recs, "results", None), focus) if focus else None
    text = f"Why is it recommended? (rank {rank})" if rank else "Explain its score for this sequence"
    return build_menu(panel, item_entries(panel, panel.session, ids, focus,
                                          lambda: panel.appendRequested.emit(list(ids)), text))


def recommendation_menu(panel, ids: list[str], focus: str | None) -> QMenu:
    """The common entries, then the export actions gui/export.py put on the list."""
    entries = item_entries(panel, panel.session, ids, focus,
                           lambda: append_to_sequence(panel, panel.session, ids),
                           "Explain this recommendation")
    return build_menu(panel, entries + [None] + list(panel.list.actions()))


def sequence_menu(panel, rows: list[int]) -> QMenu:
    s, seq = panel.session, panel.ids
    rows = [r for r in rows if 0 <= r < len(seq)]
    ids = [seq[r] for r in rows]
    focus = ids[0] if ids else None
    n_new = len({i for i in ids if panel.info(i)["is_new"]})

    def delete_new():
        """The panel's own "Delete item…" (it asks first), on these rows."""
        sel = panel.view.selectionModel()
        sel.clearSelection()
        for r in rows:
            sel.select(panel.model.index(r), QItemSelectionModel.Select)
        panel.delete_selected_new_items()

    def clear():
        panel.clear()
        s.info("cleared the sequence (Ctrl+Z undoes it)")
    entries = []
    if rows:        # on empty space: Clear alone
        entries += [(f"Remove from sequence{_n(ids)}", lambda: panel.remove_rows(rows), True),
                    ("Move to start", lambda: panel.move_rows(rows, 0), True),
                    ("Move to end", lambda: panel.move_rows(rows, len(seq)), True), None,
                    ("Show similar items", lambda: show_similar(panel, s, focus),
                     similar_panel(panel) is not None),
                    ("Copy item id" if len(ids) == 1 else f"Copy {len(ids)} item ids",
                     lambda: copy_ids(ids), True), None]
    if n_new:
        entries += [(f"Delete new item{'s' if n_new > 1 else ''} from workspace…",
                     delete_new, True)]
    entries += [None, ("Clear sequence", clear, bool(seq))]
    return build_menu(panel, entries)


# ---- right-click ----------------------------------------------------------------------
def rows_at(view, pos) -> tuple[list[int], int | None]:
    """The rows a right-click at `pos` (viewport coordinates) acts on: the selection when the
    clicked row is in it, else the clicked row alone, which becomes the selection (as file
    managers do). Nothing under the cursor: no rows."""
    index = view.indexAt(pos)
    if not index.isValid():
        return [], None
    sel = view.selectionModel()
    if not sel.isSelected(index):
        sel.setCurrentIndex(index, QItemSelectionModel.ClearAndSelect)
        return [index.row()], index.row()
    rows = sorted({i.row() for i in sel.selectedIndexes()})
    return rows, index.row()


def install(view, menu_at) -> None:
    """Right-click on `view` shows `menu_at(pos)` (a QMenu, or None for no menu)."""
    view.setContextMenuPolicy(Qt.CustomContextMenu)

    def show(pos):
        menu = menu_at(pos)
        if menu is None:
            return
        menu.setAttribute(Qt.WA_DeleteOnClose)
        menu.popup(view.viewport().mapToGlobal(pos))
    view.customContextMenuRequested.connect(show)
