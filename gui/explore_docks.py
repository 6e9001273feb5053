"""Where the explore panels sit in the main window: the Similar tab beside the inspector,
the explanation under the recommendations, the item map tabbed with the attention maps
(built lazily, it imports pyqtgraph), Compare models and Export in the File menu.
Called from MainWindow so that app.py stays about its own panels."""
from __future__ import annotations

from PySide6.QtCore import Qt

from gui.app_support import _note
from gui.explain import ExplainPanel, with_explain
from gui.similar import SimilarPanel, inspector_tabs

MAP_PANEL = ("Map", "item_map", "ItemMapPanel")   # an entry of app.LAZY_PANELS


def add_explore_docks(window) -> None:
    """After the window's own docks, before its state is restored (docks are keyed by name)."""
    s = window.session
    window.similar = SimilarPanel(s, window)
    window.docks["Inspector"].setWidget(inspector_tabs(window.inspector, window.similar))
    window.explain = ExplainPanel(s, window)
    if hasattr(window.recommendations, "resultsShown"):      # not a "not available" note
        window.docks["Recommendations"].setWidget(with_explain(window.recommendations, window.explain))
    window.map = _note("loading…")
    window._dock("Map", window.map, Qt.BottomDockWidgetArea)
    window.tabifyDockWidget(window.docks["Attention"], window.docks["Map"])
    window.docks["Attention"].raise_()
    window.panelsReady.connect(lambda: _connect_map(window))


def _connect_map(window) -> None:
    m, rec = window.map, window.recommendations
    if hasattr(m, "shown_again"):       # the projection waits until the Map tab is picked
        window.docks["Map"].visibilityChanged.connect(m.shown_again)
    if hasattr(m, "set_recommendations") and hasattr(rec, "resultsShown"):
        rec.resultsShown.connect(m.set_recommendations)
        m.set_recommendations(rec.results)


def add_explore_menus(window, file_menu) -> None:
    """File › Compare models… and File › Export (with the right-click exports)."""
    from gui.export import install_export
    window.act_compare = window._action(file_menu, "&Compare models…", lambda: compare_dialog(window),
                                        "Ctrl+Shift+M")
    install_export(window, file_menu)


def compare_dialog(window):
    from gui.compare import CompareDialog
    dlg = CompareDialog(window.session, window)
    dlg.setAttribute(Qt.WA_DeleteOnClose)
    dlg.open()
    window.compare = dlg
    return dlg
