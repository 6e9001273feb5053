"""The item map dock on a real tiny trained model: every item drawn where core.explore.map
puts it, colours that are the workspace's flags, hover and click reach the inspector's
selection, a lasso selection goes into the sequence, the sequence path and the
recommendation rings, thumbnails when zoomed in, and 100k points without per-point objects."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from gui_support import save_shot
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
    for layer in panel.layers:
        for row, (x, y) in zip(layer.rows, zip(layer.data["x"], layer.data["y"])):
            assert (x, y) == pytest.approx(want[panel.data.ids[row]], abs=1e-5)
    assert "PCA" in panel.status.text()


def test_colours_follow_the_workspace(qtbot, panel, session):
    from core.explore.draw import OTHER
    pop = session.ws.popularity()
    for colour in ("category", "popularity", "cold", "new"):
        panel.colour.setCurrentText(colour)
        assert panel.points_drawn() == len(panel.data)
        rows = np.concatenate([layer.rows for layer in panel.layers])
        assert sorted(rows.tolist()) == list(range(len(panel.data)))     # each point once
    panel.colour.setCurrentText("category")
    for layer, (label, rgb, count) in zip(panel.layers, panel.legend):
        got = {session.ws.item(panel.data.ids[r]).categories.split("|")[0] for r in layer.rows}
        assert len(layer.rows) == count
        if rgb != OTHER:
            assert got == {label}
    panel.colour.setCurrentText("popularity")
    means = [np.mean([pop.get(panel.data.ids[r], 0) for r in layer.rows]) for layer in panel.layers]
    assert means == sorted(means)                    # the ramp goes from few to many interactions


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
    d = MapData([f"i{k:06d}" for k in range(n)], g.normal(size=(n, 2)), [f"item {k}" for k in range(n)],
                np.array([("Books", "Music", "Toys")[k % 3] for k in range(n)], dtype=object),
                g.integers(0, 500, n), np.zeros(n, bool), np.zeros(n, bool), method="pca")
    p = ItemMapPanel(session)
    qtbot.addWidget(p)
    p.resize(700, 500)
    p.show()
    p.show_data(d)
    assert p.points_drawn() == n and len(p.layers) == 3
    for layer in p.layers:
        assert layer.opts["pxMode"] and all(b is None for b in layer.data["brush"][:100])   # one brush a layer
    p.colour.setCurrentText("popularity")
    assert p.points_drawn() == n
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
