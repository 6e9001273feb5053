"""Attention maps panel on a real tiny trained model."""
from __future__ import annotations


import numpy as np
import pytest

from gui_support import save_shot
from gui_tiny import model, rec  # noqa: F401 - shared fixtures

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


@pytest.fixture
def setup(qtbot, model, rec):
    from gui.attention import AttentionPanel
    from gui.state import Session
    s = Session()
    s.open_workspace(model[0])
    s.set_recommender(rec, model[1])
    p = AttentionPanel(s)
    qtbot.addWidget(p)
    p.resize(760, 640)
    p.show()
    yield s, p
    from gui.workers import wait_all
    wait_all()


def _history(session):
    seqs = session.ws.sequences()
    return seqs[sorted(seqs)[0]]


def test_maps_match_the_sequence_length(qtbot, setup, rec):
    session, panel = setup
    qtbot.waitUntil(lambda: "empty" in panel.status.text())
    seq = _history(session)[:7]
    with qtbot.waitSignal(panel.mapsShown, timeout=20000):
        session.set_sequence(seq)
    layers = len(panel.maps)
    heads = panel.maps[0].shape[0]
    assert layers == rec.manifest["config"]["layers"] and heads == rec.manifest["config"]["heads"]
    for m in panel.maps:
        assert m.shape == (heads, 7, 7)
        assert np.allclose(m.sum(axis=-1), 1.0, atol=1e-3)     # each query's weights sum to 1
    assert len(panel.plots) == layers * heads                   # all layers x all heads
    for plot, img, mat, caption in panel.plots:
        assert img.image.shape == (7, 7)
    titles = [session.ws.item(i).title for i in seq]
    assert panel.titles == titles
    ticks = panel.plots[0][0].getAxis("left")._tickLevels[0]
    from gui.attention import row_labels
    assert [t for _, t in ticks] == [f"{k + 1}. {t}" for k, t in enumerate(row_labels(titles))]
    assert len({t for _, t in ticks}) == len(set(titles))       # titles that differ read differently

    with qtbot.waitSignal(panel.mapsShown, timeout=20000):
        session.set_sequence(seq[:3])
    assert all(m.shape == (heads, 3, 3) for m in panel.maps)
    assert all(img.image.shape == (3, 3) for _, img, _, _ in panel.plots)


def test_long_sequence_keeps_the_newest_positions(qtbot, setup, rec):
    session, panel = setup
    max_len = rec.manifest["config"]["max_len"]
    seq = _history(session)[: max_len + 5]
    assert len(seq) == max_len + 5
    with qtbot.waitSignal(panel.mapsShown, timeout=20000):
        session.set_sequence(seq)
    assert panel.maps[0].shape[-1] == max_len
    assert panel.ids == seq[-max_len:]


def test_layer_head_choice_and_hover_readout(qtbot, setup):
    session, panel = setup
    seq = _history(session)[:5]
    with qtbot.waitSignal(panel.mapsShown, timeout=20000):
        session.set_sequence(seq)
    layers, heads = len(panel.maps), panel.maps[0].shape[0]
    panel.head_box.setCurrentIndex(panel.head_box.findData(0))
    panel.head_box.activated.emit(panel.head_box.currentIndex())
    assert len(panel.plots) == layers
    panel.layer_box.setCurrentIndex(panel.layer_box.findData(layers - 1))
    panel.layer_box.activated.emit(panel.layer_box.currentIndex())
    assert len(panel.plots) == 1
    plot, img, mat, caption = panel.plots[0]
    assert np.array_equal(mat, panel.maps[layers - 1][0])
    from gui.attention import MEAN
    panel.head_box.setCurrentIndex(panel.head_box.findData(MEAN))
    panel.head_box.activated.emit(panel.head_box.currentIndex())
    plot, img, mat, caption = panel.plots[0]
    assert np.allclose(mat, panel.maps[layers - 1].mean(axis=0))

    qtbot.wait(100)                       # let the layout settle before mapping coordinates
    i, j = 3, 1
    scene_pos = plot.vb.mapViewToScene(pg_point(j + 0.5, i + 0.5))
    panel.view.scene().sigMouseMoved.emit(scene_pos)
    text = panel.readout.text()
    t_i, t_j = session.ws.item(seq[i]).title, session.ws.item(seq[j]).title
    assert f"query {i + 1} ({t_i[:29]}" in text and f"key {j + 1} ({t_j[:29]}" in text
    assert f"{mat[i, j]:.3f}" in text

    panel.layer_box.setCurrentIndex(panel.layer_box.findData(-1))
    panel.head_box.setCurrentIndex(panel.head_box.findData(-1))
    panel.layer_box.activated.emit(0)
    qtbot.wait(100)
    save_shot(panel, "attention.png")


def pg_point(x, y):
    from PySide6.QtCore import QPointF
    return QPointF(x, y)


def test_no_model_is_a_plain_message(qtbot, setup):
    session, panel = setup
    session.set_sequence(_history(session)[:4])
    session.set_recommender(None)
    qtbot.waitUntil(lambda: "No model" in panel.status.text() and not panel.busy, timeout=5000)
    assert panel.maps == [] and panel.plots == []


@pytest.mark.parametrize("size", [(1200, 420), (500, 760)])
def test_one_map_fills_its_plot_in_a_wide_or_tall_dock(qtbot, setup, size):
    """One layer and head chosen: the map spans its axes, so the row labels sit at its edge
    (a square-locked map used to float in the middle of an empty axis)."""
    session, panel = setup
    panel.resize(*size)
    qtbot.waitUntil(lambda: "empty" in panel.status.text())
    with qtbot.waitSignal(panel.mapsShown, timeout=20000):
        session.set_sequence(_history(session)[:8])
    for box in (panel.head_box, panel.layer_box):
        box.setCurrentIndex(box.findData(0))
        box.activated.emit(box.currentIndex())
    qtbot.wait(200)
    assert len(panel.plots) == 1
    (xr, yr) = panel.plots[0][0].getViewBox().viewRange()
    assert xr == pytest.approx([0, 8], abs=0.05) and yr == pytest.approx([0, 8], abs=0.05)
    save_shot(panel, f"attention_one_map_{size[0]}x{size[1]}.png")
