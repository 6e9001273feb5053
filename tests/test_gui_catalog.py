"""Catalog browser, thumbnails and settings on real widgets and a real SQLite workspace."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings, QSize, Qt
from PySide6.QtWidgets import QMainWindow

from gui.catalog import MIME_ITEMS, NEW_TAG, CatalogPanel, decode_ids
from gui.settings import Settings
from gui.state import Session
from gui.thumbnails import ThumbnailCache
from gui.workers import wait_all
from gui_support import ml1m_workspace, save_shot, synthetic_workspace


@pytest.fixture(scope="module")
def ml_ws(ml1m, tmp_path_factory):
    return ml1m_workspace(ml1m, tmp_path_factory.mktemp("ml") / "ws")


@pytest.fixture(scope="module")
def big_ws(tmp_path_factory):
    return synthetic_workspace(tmp_path_factory.mktemp("big") / "ws", 100_000)


def open_panel(qtbot, ws_path, size=(900, 700)):
    session = Session()
    panel = CatalogPanel(session)
    qtbot.addWidget(panel)
    panel.resize(*size)
    panel.show()
    session.open_workspace(ws_path)
    qtbot.waitUntil(lambda: panel.loaded, timeout=20000)
    return session, panel


def hay(panel, row):
    """What the search looks in, lower-cased: id, title, categories, the text's start."""
    it = panel.session.ws.item(panel.model.item_id(row))
    return f"{it.id}\n{it.title}\n{it.categories}\n{it.text[:1000]}".lower()


def titles(panel):
    m = panel.model
    return [m.data(m.index(r)) for r in range(m.rowCount())]


@pytest.mark.realdata
def test_catalog_loads_every_item_with_thumbnails(qtbot, ml_ws):
    session, panel = open_panel(qtbot, ml_ws)
    m = panel.model
    assert m.rowCount() == 300 and panel.count.text() == "300 items"
    # sorted by title by default (case-insensitive, ties by id), which is not the id order
    ids = [m.item_id(r) for r in range(m.rowCount())]
    keys = [(m.title(i).lower(), i) for i in ids]
    assert keys == sorted(keys) and ids != sorted(ids)
    assert titles(panel) == [m.title(i) for i in ids]
    # visible thumbnails get decoded on workers and replace the placeholder
    first = m.index(0)
    assert m.data(first, Qt.DecorationRole) is not None
    qtbot.waitUntil(lambda: panel.thumbs.cached(m.image(m.item_id(0))), timeout=10000)
    pm = m.data(first, Qt.DecorationRole)
    assert not pm.isNull() and pm.cacheKey() != panel.thumbs.loading.cacheKey()
    assert pm.width() <= panel.thumbs.size.width() and pm.height() <= panel.thumbs.size.height()
    save_shot(panel, "catalog.png")
    session.ws.close()


@pytest.mark.realdata
def test_search_filter_and_sort(qtbot, ml_ws):
    session, panel = open_panel(qtbot, ml_ws)
    qtbot.keyClicks(panel.search, "toy")
    assert panel.model.rowCount() == 300          # debounced: nothing yet
    qtbot.waitUntil(lambda: panel.model.rowCount() < 300, timeout=2000)
    assert "Toy Story (1995)" in titles(panel)
    assert all("toy" in hay(panel, r) for r in range(panel.model.rowCount()))
    assert "of 300 items" in panel.count.text()

    panel.search.clear()
    panel.apply_search()
    panel.set_category("Animation")
    ids = panel.visible_ids()
    assert 0 < len(ids) < 300
    assert all("Animation" in session.ws.item(i).categories.split("|") for i in ids)
    # two words must both match, in any field (title, categories, text)
    qtbot.keyClicks(panel.search, "story animation")
    panel.apply_search()
    assert titles(panel) == ["Toy Story (1995)"]

    panel.search.clear()
    panel.apply_search()
    panel.set_category("")
    panel.set_sort("popularity")
    pops = [panel.model.popularity(r) for r in range(panel.model.rowCount())]
    assert pops == sorted(pops, reverse=True) and pops[0] > pops[-1]
    panel.set_sort("id")
    ids = panel.visible_ids()
    assert ids == sorted(ids)
    with pytest.raises(KeyError):
        panel.set_category("No such category")
    session.ws.close()


@pytest.mark.realdata
def test_select_double_click_and_drag_payload(qtbot, ml_ws):
    session, panel = open_panel(qtbot, ml_ws)
    panel.set_sort("id")
    view = panel.view
    qtbot.waitUntil(lambda: view.visualRect(panel.model.index(2)).isValid(), timeout=5000)
    rect = view.visualRect(panel.model.index(2))
    with qtbot.waitSignal(session.selectionChanged, timeout=2000) as sig:
        qtbot.mouseClick(view.viewport(), Qt.LeftButton, pos=rect.center())
    want = panel.model.item_id(2)
    assert sig.args == [want] and session.selected == want
    with qtbot.waitSignal(panel.appendRequested, timeout=2000) as sig:
        qtbot.mouseDClick(view.viewport(), Qt.LeftButton, pos=rect.center())
    assert sig.args == [[want]]
    # keyboard moves the selection too
    qtbot.keyClick(view, Qt.Key_Right)
    assert session.selected == panel.model.item_id(3)
    # a drag carries the ids as JSON under our mime type
    idx = [panel.model.index(r) for r in (5, 1)]
    mime = panel.model.mimeData(idx)
    assert mime.hasFormat(MIME_ITEMS)
    assert decode_ids(mime.data(MIME_ITEMS)) == [panel.model.item_id(1), panel.model.item_id(5)]
    assert decode_ids(b"{not json") == [] and decode_ids(b'{"a": 1}') == []
    # selecting elsewhere (e.g. the sequence) selects and reveals it here
    session.select(panel.model.item_id(250))
    assert view.currentIndex().row() == 250
    session.ws.close()


@pytest.mark.realdata
def test_new_items_filter_and_reload(qtbot, ml_ws, tmp_path):
    import shutil
    ws_path = tmp_path / "ws"
    shutil.copytree(ml_ws, ws_path)
    session, panel = open_panel(qtbot, ws_path)
    from core.workspace import Workspace
    with Workspace.open(ws_path) as ws:
        ws.add_new_item("My brand new lamp", "a lamp")
    with qtbot.waitSignal(session.itemsChanged):
        session.itemsChanged.emit()
    qtbot.waitUntil(lambda: panel.loaded and panel.model.total() == 301, timeout=10000)
    panel.set_category(NEW_TAG)
    assert titles(panel) == ["★ My brand new lamp"]
    panel.set_sort("newest")
    panel.set_category("")
    assert panel.model.item_id(0) == "new:1"
    session.ws.close()


def test_broken_and_missing_images_get_placeholders(qtbot, tmp_path):
    from core.workspace import Item, Workspace
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (tmp_path / "empty.png").write_bytes(b"")
    ws = Workspace.create(tmp_path / "ws")
    with ws.transaction() as db:
        ws.upsert_items([Item("a", "Corrupt", image=str(tmp_path / "bad.jpg")),
                         Item("b", "Missing", image=str(tmp_path / "gone.jpg")),
                         Item("c", "Empty", image=str(tmp_path / "empty.png")),
                         Item("d", "No image")], db)
    ws.close()
    session, panel = open_panel(qtbot, tmp_path / "ws")
    m = panel.model
    for r in range(4):
        m.data(m.index(r), Qt.DecorationRole)
    paths = [p for p in (m.image(m.item_id(r)) for r in range(4)) if p]
    qtbot.waitUntil(lambda: all(panel.thumbs.cached(p) for p in paths), timeout=5000)
    assert all(panel.thumbs.is_broken(p) for p in paths)
    by_title = {m.data(m.index(r)): m.data(m.index(r), Qt.DecorationRole) for r in range(4)}
    assert by_title["Corrupt"].cacheKey() == panel.thumbs.broken.cacheKey()
    assert by_title["No image"].cacheKey() == panel.thumbs.none.cacheKey()
    save_shot(panel, "catalog_broken.png")
    session.ws.close()


@pytest.mark.realdata
def test_thumbnail_cache_is_bounded_lru(qtbot, ml1m):
    cache = ThumbnailCache(QSize(40, 60), capacity=3)
    posters = sorted((ml1m / "posters").glob("*.jpg"))[:5]
    for p in posters:
        cache.get(str(p))
    qtbot.waitUntil(cache.idle, timeout=10000)
    assert len(cache._cache) == 3
    assert cache.get(str(posters[0])).cacheKey() == cache.loading.cacheKey()   # evicted: asked again
    qtbot.waitUntil(cache.idle, timeout=10000)


def test_100k_items_load_on_a_worker_and_paint_only_what_is_visible(qtbot, big_ws, monkeypatch):
    """What keeps 100k items smooth, counted rather than timed (bench/bench_gui.py times it):
    SQLite is read on a worker, filtering never asks the model for every row, and a scroll
    step asks data() only for the cells on screen."""
    import math
    import threading
    from collections import Counter
    from PySide6.QtWidgets import QApplication
    import gui.catalog as catalog
    calls = Counter()
    real_data, real_load = catalog.CatalogModel.data, catalog.load_catalog

    def counting_data(self, index, role=Qt.DisplayRole):
        calls[int(role)] += 1
        return real_data(self, index, role)
    loads = []
    monkeypatch.setattr(catalog.CatalogModel, "data", counting_data)
    monkeypatch.setattr(catalog, "load_catalog",
                        lambda path, *a: loads.append(threading.get_ident()) or real_load(path, *a))
    session, panel = open_panel(qtbot, big_ws)
    m = panel.model
    assert m.rowCount() == 100_000
    assert len(loads) == 1 and loads[0] != threading.get_ident()      # read on a worker thread
    view = panel.view
    vp, grid = view.viewport(), view.gridSize()
    cells = math.ceil(vp.width() / grid.width()) * (math.ceil(vp.height() / grid.height()) + 1)
    per_paint = 20 * cells              # every role the delegate asks for, twice, of each cell shown

    calls.clear()
    panel.search.setText("product 4242 ")
    panel.apply_search()
    qtbot.waitUntil(lambda: not panel.busy, timeout=10000)     # 100k items: filtered on a worker
    QApplication.processEvents()
    assert "i004242" in panel.visible_ids() and sum(calls.values()) <= per_paint
    assert all("product" in hay(panel, r) and "4242" in hay(panel, r) for r in range(m.rowCount()))
    panel.set_category("Garden")
    qtbot.waitUntil(lambda: not panel.busy, timeout=10000)
    assert all(session.ws.item(i).categories.startswith("Garden") for i in panel.visible_ids())
    panel.search.clear()
    panel.apply_search()
    qtbot.waitUntil(lambda: not panel.busy, timeout=10000)
    assert m.rowCount() == 12_500
    calls.clear()
    panel.set_category("")                  # back to 100k rows: laid out without asking each one
    qtbot.waitUntil(lambda: not panel.busy, timeout=10000)
    QApplication.processEvents()
    assert m.rowCount() == 100_000 and sum(calls.values()) <= per_paint

    # scroll through the whole list: each step paints the cells on screen, never the catalog
    bar = view.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0, timeout=10000)
    worst, thumbs = 0, 0
    for k in range(41):
        calls.clear()
        bar.setValue(bar.maximum() * k // 40)
        QApplication.processEvents()
        vp.repaint()
        worst = max(worst, sum(calls.values()))
        thumbs = max(thumbs, calls[int(Qt.DecorationRole)])
    print(f"{cells} cells on screen; at most {worst} data() calls and {thumbs} thumbnails per scroll step")
    assert 0 < worst <= per_paint and 0 < thumbs <= 2 * cells
    # keyboard End jumps to the last item and selects it (once the batched layout is complete)
    last = m.index(m.rowCount() - 1)
    qtbot.waitUntil(lambda: not view.visualRect(last).isEmpty(), timeout=10000)
    view.setFocus()
    qtbot.keyClick(view, Qt.Key_End)
    assert session.selected == m.item_id(m.rowCount() - 1)
    session.ws.close()


def test_settings_persist_values_and_window_layout(qtbot, tmp_path):
    ini = str(tmp_path / "studio.ini")
    s = Settings(QSettings(ini, QSettings.IniFormat))
    assert s.clip_model == "ViT-B-32" and s.clip_tag == "laion2b_s34b_b79k" and s.device == "auto"
    s.last_workspace = "/some/ws"
    s.clip_weights = "/w/clip.safetensors"
    s.device = "cpu"
    win = QMainWindow()
    qtbot.addWidget(win)
    win.resize(777, 555)
    s.save_window(win)

    s2 = Settings(QSettings(ini, QSettings.IniFormat))
    assert (s2.last_workspace, s2.clip_weights, s2.device) == ("/some/ws", "/w/clip.safetensors", "cpu")
    win2 = QMainWindow()
    qtbot.addWidget(win2)
    assert s2.restore_window(win2)
    assert (win2.width(), win2.height()) == (777, 555)
    assert not Settings(QSettings(str(tmp_path / "none.ini"), QSettings.IniFormat)).restore_window(win2)
    wait_all()
