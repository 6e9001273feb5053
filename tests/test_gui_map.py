"""The item map dock on a real tiny trained model: every item drawn where core.explore.map
puts it, colours that are the workspace's flags, hover and click reach the inspector's
selection, a lasso selection goes into the sequence, the sequence path and the
recommendation rings, thumbnails when zoomed in, 100k points as arrays (drawn, hovered and
clicked without per-point objects), the columns read as core's map_rows gives them, and no
projection started while the panel (a tab behind Attention at launch) is hidden."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from gui_support import close_window, save_shot
from gui_tiny import model, rec  # noqa: F401 - shared fixtures

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


@pytest.fixture
def session(qtbot, model):
    from gui.state import Session
    s = Session()
    s.open_workspace(model[0])
    yield s
    from gui.workers import wait_all
    wait_all()


@pytest.fixture
def panel(qtbot, session, rec, model):
    from gui.item_map import ItemMapPanel
    p = ItemMapPanel(session)
    qtbot.addWidget(p)
    p.resize(760, 560)
    p.show()
    p.method.setCurrentText("pca")        # UMAP's first run takes a minute on two cores
    with qtbot.waitSignal(p.mapShown, timeout=60000):
        session.set_recommender(rec, model[1])
    return p


def _to_widget(panel, x, y):
    scene = panel.view.mapViewToScene(QPointF(float(x), float(y)))
    return panel.plot.mapFromScene(scene)


def test_every_item_is_drawn_where_the_core_map_puts_it(qtbot, panel, session, rec):
    from core.explore.items import model_items
    from core.explore.map import item_map
    ids, _ = model_items(rec)
    assert panel.points_drawn() == len(ids) == len(panel.data)
    m = item_map(session.ws, rec, method="pca")
    assert m.cached                                  # the panel's worker wrote the cache
    want = dict(zip(m.ids, m.xy.tolist()))
    for row, (x, y) in zip(panel.points.rows, panel.points.xy.tolist()):
        assert (x, y) == pytest.approx(want[panel.data.ids[row]], abs=1e-5)
    assert "PCA" in panel.status.text()


def test_colours_follow_the_workspace(qtbot, panel, session):
    from core.explore.draw import OTHER
    pop = session.ws.popularity()
    for colour in ("category", "popularity", "cold", "new"):
        panel.colour.setCurrentText(colour)
        assert panel.points_drawn() == len(panel.data)
        assert sorted(panel.points.rows.tolist()) == list(range(len(panel.data)))     # each point once
    panel.colour.setCurrentText("category")
    assert [rgb for rgb, _ in panel.points.groups] == [rgb for _, rgb, _ in panel.legend]
    for (rgb, rows), (label, _, count) in zip(panel.points.groups, panel.legend):
        got = {session.ws.item(panel.data.ids[r]).categories.split("|")[0] for r in rows}
        assert len(rows) == count
        if rgb != OTHER:
            assert got == {label}
    panel.colour.setCurrentText("popularity")
    means = [np.mean([pop.get(panel.data.ids[r], 0) for r in rows]) for _, rows in panel.points.groups]
    assert means == sorted(means)                    # the ramp goes from few to many interactions


def _pixels(panel) -> np.ndarray:
    """[N, 2] viewport pixel of every map row."""
    def at(x, y):
        q = panel.plot.viewportTransform().map(panel.view.mapViewToScene(QPointF(x, y)))
        return np.array([q.x(), q.y()])
    o = at(0, 0)
    ex, ey = at(1, 0) - o, at(0, 1) - o          # the view is affine: three points fix it
    return o + panel.data.xy[:, :1] * ex + panel.data.xy[:, 1:] * ey


def _drawn_rgb(img, xy) -> tuple[int, int, int]:
    c = img.pixelColor(round(float(xy[0])), round(float(xy[1])))
    return c.red(), c.green(), c.blue()


def _on_white(rgb):
    """One point of colour rgb drawn over the white background."""
    from gui.map_points import ALPHA
    return tuple(round(v * ALPHA / 255 + 255 * (1 - ALPHA / 255)) for v in rgb)


def _shade_of(got, rgb) -> bool:
    """got lies between white and rgb: points of that colour only, stacked or (at a disc's
    edge, a 3 px point drawn within half a pixel of its place) partly covering the pixel."""
    ratios = [(255 - g) / (255 - c) for g, c in zip(got, rgb) if 255 - c > 40]
    return bool(ratios) and min(ratios) > 0.3 and max(ratios) - min(ratios) < 0.15


def test_the_points_are_painted_in_their_colours(qtbot, panel):
    """What is on screen: a point with no other within a point's width shows its group's
    colour at its pixel, in each colouring."""
    pix = _pixels(panel)
    gap = np.hypot(*(pix[:, None, :] - pix[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(gap, np.inf)
    alone = np.flatnonzero(gap.min(1) > panel.points.size + 2)
    assert len(alone) >= 5
    for colour in ("category", "popularity", "cold"):
        panel.colour.setCurrentText(colour)
        img = panel.plot.viewport().grab().toImage()
        group = np.empty(len(panel.data), dtype=np.intp)
        for k, (_, rows) in enumerate(panel.points.groups):
            group[rows] = k
        for r in alone[:20]:
            rgb = panel.points.groups[group[r]][0]
            assert _drawn_rgb(img, pix[r]) == pytest.approx(_on_white(rgb), abs=4), (colour, r)


def test_hover_inspects_click_selects_lasso_adds_to_the_sequence(qtbot, panel, session):
    d = panel.data
    k = int(np.argmax(d.popularity))
    x, y = d.xy[k]
    qtbot.mouseMove(panel.plot.viewport(), _to_widget(panel, x, y))
    qtbot.waitUntil(lambda: session.selected is not None, timeout=5000)
    assert panel.item_at(x, y) == session.selected
    assert np.allclose(d.xy[d.row[session.selected]], (x, y), atol=panel._radius()[0])

    other = int(np.argmin(d.popularity))
    pos = _to_widget(panel, *d.xy[other])
    qtbot.mouseClick(panel.plot.viewport(), Qt.LeftButton, pos=pos)
    qtbot.waitUntil(lambda: len(panel.selected) == 1, timeout=5000)
    assert panel.selected == [panel.item_at(*d.xy[other])]

    # a lasso around a box of the map: exactly the points inside it, most popular first
    (x0, x1), (y0, y1) = panel.view.viewRange()
    box = [(x0, y0), ((x0 + x1) / 2, y0), ((x0 + x1) / 2, (y0 + y1) / 2), (x0, (y0 + y1) / 2)]
    got = panel.select_polygon(box)
    inside = [d.ids[r] for r in range(len(d)) if x0 <= d.xy[r, 0] <= (x0 + x1) / 2
              and y0 <= d.xy[r, 1] <= (y0 + y1) / 2]
    assert got and sorted(got) == sorted(inside)
    assert [d.popularity[d.row[i]] for i in got] == sorted([d.popularity[d.row[i]] for i in got], reverse=True)
    assert panel.add_button.isEnabled()
    session.set_sequence(got[:1])
    panel.add_button.click()
    assert session.sequence == got                   # the first was there already: not twice
    save_shot(panel, "item_map_selection.png")


def test_lasso_drag_with_the_mouse(qtbot, panel, session):
    d = panel.data
    panel.lasso_button.setChecked(True)
    (x0, x1), (y0, y1) = panel.view.viewRange()
    dx, dy = (x1 - x0) * 0.02, (y1 - y0) * 0.02
    corners = [(x0 + dx, y0 + dy), (x1 - dx, y0 + dy), (x1 - dx, y1 - dy), (x0 + dx, y1 - dy)]
    pts = [_to_widget(panel, *c) for c in corners]
    vp = panel.plot.viewport()
    def send(kind, at, button, buttons):
        at = QPointF(at)
        QApplication.sendEvent(vp, QMouseEvent(kind, at, vp.mapToGlobal(at), button, buttons, Qt.NoModifier))

    send(QEvent.MouseButtonPress, pts[0], Qt.LeftButton, Qt.LeftButton)
    for a, b in zip(pts, pts[1:] + pts[:1]):     # a dragged mouse: moves with the button held
        for t in np.linspace(0, 1, 8):
            send(QEvent.MouseMove, a + (b - a) * float(t), Qt.NoButton, Qt.LeftButton)
            qtbot.wait(15)                      # pyqtgraph drops moves above its mouseRateLimit (100 Hz)
    send(QEvent.MouseButtonRelease, pts[0], Qt.LeftButton, Qt.NoButton)
    qtbot.waitUntil(lambda: len(panel.selected) > 0, timeout=5000)
    inside = {d.ids[r] for r in range(len(d)) if x0 + dx <= d.xy[r, 0] <= x1 - dx and y0 + dy <= d.xy[r, 1] <= y1 - dy}
    assert set(panel.selected) == inside and len(inside) > len(d) // 2
    assert panel.view.curve.getData()[0] is None or len(panel.view.curve.getData()[0]) == 0   # trace gone


def test_sequence_path_and_recommendation_rings(qtbot, panel, session, rec):
    d = panel.data
    seq = session.ws.sequences()[sorted(session.ws.sequences())[0]][:6]
    session.set_sequence(seq)
    xs, ys = panel.path.getData()
    assert np.allclose(np.c_[xs, ys], d.xy[[d.row[i] for i in seq]])
    top = rec.recommend(seq, k=10, exclude=seq)
    panel.set_recommendations(top)
    ring = np.c_[panel.rings.data["x"], panel.rings.data["y"]]
    assert np.allclose(ring, d.xy[[d.row[i] for i, _ in top]])
    save_shot(panel, "item_map.png")


def test_thumbnails_appear_when_zoomed_in(qtbot, panel):
    d = panel.data
    assert panel.thumbnails_shown == 0              # the whole map: too many for pictures
    k = next(r for r, i in enumerate(d.ids) if i in d.images)
    (x0, x1), (y0, y1) = panel.view.viewRange()
    w, h = (x1 - x0) / 40, (y1 - y0) / 40
    panel.view.setRange(xRange=(d.xy[k, 0] - w, d.xy[k, 0] + w), yRange=(d.xy[k, 1] - h, d.xy[k, 1] + h),
                        padding=0)
    qtbot.waitUntil(lambda: panel.thumbnails_shown > 0, timeout=5000)
    assert panel.thumbnails_shown == sum(1 for r in panel.visible_rows() if d.ids[r] in d.images)


def test_a_hundred_thousand_points_are_arrays_not_objects(qtbot, session):
    from gui.item_map import ItemMapPanel
    from gui.map_data import MapData
    n = 100_000
    g = np.random.default_rng(0)
    xy = g.normal(size=(n, 2)) + np.c_[10.0 * (np.arange(n) % 3), np.zeros(n)]   # a cluster per category
    d = MapData([f"i{k:06d}" for k in range(n)], xy, [f"item {k}" for k in range(n)],
                np.array([("Books", "Music", "Toys")[k % 3] for k in range(n)], dtype=object),
                g.integers(0, 500, n), np.zeros(n, bool), np.zeros(n, bool), method="pca")
    p = ItemMapPanel(session)
    qtbot.addWidget(p)
    p.resize(700, 500)
    p.show()
    p.show_data(d)
    assert p.points_drawn() == n and len(p.points.groups) == 3
    assert p.points.xy.dtype == np.float64 and p.points.code.dtype.kind == "i"   # arrays, one colour code a point
    big = [it for it in p.view.addedItems if isinstance(it, pg.ScatterPlotItem) and len(it.data) > 100]
    assert not big                                   # no pyqtgraph record (pen, brush, spot) per point
    img, pix = p.plot.viewport().grab().toImage(), _pixels(p)
    for rgb, rows in p.points.groups:                # each category's cluster is drawn in its colour
        assert all(_shade_of(_drawn_rgb(img, pix[r]), rgb) for r in rows[:300])
    p.colour.setCurrentText("popularity")
    assert p.points_drawn() == n
    got = p.select_polygon([(-5, -5), (5, -5), (5, 5), (-5, 5)])   # a lasso around the first cluster
    assert len(got) > n // 4 and sorted(p.marks.rows.tolist()) == sorted(d.row[i] for i in got)
    big = [it for it in p.view.addedItems if isinstance(it, pg.ScatterPlotItem) and len(it.data) > 100]
    assert not big                                   # the selection's marks are arrays too
    got = p.item_at(*d.xy[12345])
    assert got is not None and np.hypot(*(d.xy[d.row[got]] - d.xy[12345])) <= np.hypot(*p._radius())
    assert p.item_at(1e3, 1e3) is None               # nothing drawn near there
    rows = p.visible_rows()
    assert len(rows) > n * 0.9


def test_the_projection_runs_on_a_copy_of_the_models_vectors(session, rec):
    """The worker holds the model's lock only to copy the vectors (UMAP can take a minute while
    the recommendations keep asking the model); the copy maps exactly as the model does."""
    import torch
    from core.explore.map import cache_key, item_map
    from gui.map_data import snapshot
    snap = snapshot(rec)
    assert torch.equal(snap.table, rec.table) and snap.table.data_ptr() != rec.table.data_ptr()
    a, b = item_map(session.ws, snap, method="pca"), item_map(session.ws, rec, method="pca")
    assert a.ids == b.ids and np.array_equal(a.xy, b.xy) and a.path == b.path
    assert cache_key(snap.manifest["weights_sha256"], "pca", a.ids) == cache_key(
        rec.manifest["weights_sha256"], "pca", b.ids)


def _big_map(n: int = 100_000):
    from gui.map_data import MapData
    g = np.random.default_rng(3)
    xy = g.normal(size=(n, 2)) * np.array([3.0, 1.0])
    return MapData([f"i{k:06d}" for k in range(n)], xy, [f"item {k}" for k in range(n)],
                   np.array([("Books", "Music", "Toys", "")[k % 4] for k in range(n)], dtype=object),
                   g.integers(0, 500, n), g.random(n) < 0.05, np.zeros(n, bool), method="pca")


def test_hover_and_click_on_a_hundred_thousand_points_find_the_nearest(qtbot, session):
    """The item under the pointer is the nearest one in screen pixels (the map's x and y
    scales differ), none when no point is within a few pixels; a real click selects it."""
    from gui.item_map import HOVER_PX, ItemMapPanel
    d = _big_map()
    p = ItemMapPanel(session)
    qtbot.addWidget(p)
    p.resize(700, 500)
    p.show()
    p.show_data(d)
    p.view.setRange(xRange=(-2, 2), yRange=(-1, 1), padding=0)     # zoomed in: x and y px differ
    qtbot.wait(50)
    rx, ry = p._radius()
    g = np.random.default_rng(4)
    for x, y in np.c_[g.uniform(-2, 2, 200), g.uniform(-1, 1, 200)]:
        dist = np.hypot((d.xy[:, 0] - x) / rx, (d.xy[:, 1] - y) / ry) * HOVER_PX   # in pixels
        k = int(np.argmin(dist))
        want = d.ids[k] if dist[k] <= HOVER_PX else None
        got = p.item_at(x, y)
        if want is None:
            assert got is None
        else:                                        # a tie: either of them
            assert got is not None and dist[d.row[got]] == pytest.approx(dist[k])
    k = int(np.argmin(np.hypot(d.xy[:, 0] - 0.5, d.xy[:, 1] - 0.2)))
    qtbot.mouseClick(p.plot.viewport(), Qt.LeftButton, pos=_to_widget(p, *d.xy[k]))
    qtbot.waitUntil(lambda: len(p.selected) == 1, timeout=5000)
    assert p.selected == [p.item_at(*d.xy[k])] and session.selected == p.selected[0]
    got = np.hypot(*((d.xy[d.row[p.selected[0]]] - d.xy[k]) / (rx, ry)))
    assert got <= 1.0                                # within the pointer's few pixels


def test_the_columns_are_the_ones_core_map_rows_gives(qtbot, panel, session):
    """The worker reads the columns straight from SQLite; they are map_rows' values (and the
    image paths Workspace.image_path gives), row for row."""
    from core.explore.map import map_rows
    from core.workspace import Item
    from gui.map_data import MapData
    d = panel.data
    rows = map_rows(session.ws, d)
    assert [r["item_id"] for r in rows] == d.ids
    assert d.titles == [r["title"] or r["item_id"] for r in rows]
    assert d.category.tolist() == [r["category"] or "" for r in rows]
    assert d.popularity.tolist() == [r["popularity"] for r in rows]
    assert d.cold.tolist() == [bool(r["cold"]) for r in rows]
    assert d.new.tolist() == [bool(r["new"]) for r in rows]
    want = {it.id: str(session.ws.image_path(it)) for it in session.ws.items() if it.image}
    assert {i: d.image_path(i) for i in d.ids if d.image_path(i)} == want and want
    rel = MapData(["a", "b", "c"], np.zeros((3, 2)), ["", "", ""], np.array(["", "", ""], dtype=object),
                  np.zeros(3, int), np.zeros(3, bool), np.zeros(3, bool),
                  images={"a": "images/a.jpg", "b": "/elsewhere/b.jpg"}, root=str(session.ws.path))
    # a stored relative path is in the workspace, as Workspace.image_path has it
    for i in ("a", "b"):
        assert rel.image_path(i) == str(session.ws.image_path(Item(id=i, image=rel.images[i])))
    assert rel.image_path("c") is None


def test_export_png_draws_the_points(qtbot, panel, tmp_path):
    """File > Export > Item map paints the points (their own paint, at the export's scale)."""
    from PySide6.QtGui import QImage
    from core.explore.draw import OTHER
    from gui.export import write_map
    img = QImage(str(write_map(panel, tmp_path / "map.png")))
    assert not img.isNull()
    want = [rgb for rgb, _ in panel.points.groups if rgb != OTHER]
    seen = set()
    for x in range(0, img.width(), 2):
        for y in range(0, img.height(), 2):
            c = img.pixelColor(x, y)
            seen.update(rgb for rgb in want if _shade_of((c.red(), c.green(), c.blue()), rgb))
    assert len(seen) >= min(4, len(want))


def test_a_hidden_panel_computes_nothing_until_shown(qtbot, session, rec, model):
    """At launch the Map dock is a tab behind Attention: a model loaded then starts no
    projection; showing the panel starts it."""
    from gui.item_map import ItemMapPanel
    p = ItemMapPanel(session)
    qtbot.addWidget(p)
    p.method.setCurrentText("pca")
    session.set_recommender(rec, model[1])
    qtbot.wait(300)
    assert not p.isVisible() and not p.computing and p.data is None
    assert "shown" in p.status.text()
    with qtbot.waitSignal(p.mapShown, timeout=60000):
        p.show()
    assert p.points_drawn() == len(p.data) > 0
    p.hide()                                         # hidden again: a map it has shows at once
    session.set_recommender(None)
    assert p.data is None
    session.set_recommender(rec, model[1])
    assert p.data is not None and not p.computing


def test_the_map_dock_behind_attention_starts_no_projection_at_launch(qtbot, tmp_path, model):
    from PySide6.QtCore import QSettings
    from gui.app import MainWindow
    from gui.settings import Settings
    from gui.state import Session
    w = MainWindow(Session(), Settings(QSettings(str(tmp_path / "studio.ini"), QSettings.IniFormat)))
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    try:
        qtbot.waitUntil(lambda: w.panels_ready, timeout=60000)
        w.map.method.setCurrentText("pca")
        with qtbot.waitSignal(w.modelLoaded, timeout=60000):
            assert w.open_workspace(model[0])
            w.load_model(model[1])
        qtbot.wait(300)
        assert not w.attention.visibleRegion().isEmpty()            # Attention is the tab in front
        assert not w.map.on_screen() and w.map.isVisible()        # a tab behind Attention
        assert not w.map.computing and w.map.data is None
        with qtbot.waitSignal(w.map.mapShown, timeout=60000):
            w.docks["Map"].raise_()                  # the user picks the Map tab
        assert w.map.points_drawn() == len(w.map.data) > 0
    finally:
        close_window(w)
