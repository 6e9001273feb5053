"""Live recommendations panel on a real tiny trained model."""
from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt

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


def _histories(session, n=2):
    seqs = session.ws.sequences()
    return [seqs[u] for u in sorted(seqs)[:n]]


@pytest.fixture
def panel(qtbot, session):
    from gui.recommendations import RecommendationsPanel
    p = RecommendationsPanel(session)
    qtbot.addWidget(p)
    p.resize(360, 620)
    p.show()
    return p


def test_plain_messages_without_model_or_sequence(qtbot, panel, session, rec, model):
    qtbot.waitUntil(lambda: "No model" in panel.status.text())
    assert panel.list.count() == 0
    session.set_recommender(rec, model[1])
    qtbot.waitUntil(lambda: "empty" in panel.status.text())
    assert panel.list.count() == 0


def test_results_follow_the_sequence(qtbot, panel, session, rec, model):
    session.set_recommender(rec, model[1])
    a, b = _histories(session)
    seq_a, seq_b = a[:6], b[:6]
    with qtbot.waitSignal(panel.resultsShown, timeout=20000) as got:
        session.set_sequence(seq_a)
    want_a = rec.recommend(seq_a, k=10, exclude=tuple(seq_a))
    assert got.args[0] == [(i, pytest.approx(s, abs=1e-5)) for i, s in want_a]
    assert panel.list.count() == 10
    assert panel.last_latency_ms is not None and panel.last_latency_ms >= 50  # includes the debounce
    first_title = session.ws.item(want_a[0][0]).title
    assert first_title in panel.list.item(0).text()

    with qtbot.waitSignal(panel.resultsShown, timeout=20000) as got:
        session.set_sequence(seq_b)
    want_b = rec.recommend(seq_b, k=10, exclude=tuple(seq_b))
    assert [i for i, _ in got.args[0]] == [i for i, _ in want_b]
    assert [i for i, _ in want_a] != [i for i, _ in want_b]

    with qtbot.waitSignal(panel.resultsShown, timeout=20000):
        panel.k_spin.setValue(4)
    assert [i for i, _ in panel.results] == [i for i, _ in want_b[:4]]
    assert panel.list.count() == 4
    qtbot.waitUntil(lambda: panel.thumbs.idle(), timeout=10000)
    qtbot.wait(100)
    save_shot(panel, "recommendations.png")


def test_hide_seen_excludes_sequence_items(qtbot, panel, session, rec, model):
    session.set_recommender(rec, model[1])
    hist = _histories(session, 1)[0]
    # a sequence whose own items the model ranks high: the model's favourites for a short history
    favourites = [i for i, _ in rec.recommend(hist[:3], k=5, exclude=())]
    seq = hist[:3] + favourites
    shown = rec.recommend(seq, k=30, exclude=())
    assert {i for i, _ in shown} & set(seq), "test needs sequence items among the unfiltered top-30"
    panel.k_spin.setValue(30)
    with qtbot.waitSignal(panel.resultsShown, timeout=20000):
        panel.hide_seen.setChecked(False)
        session.set_sequence(seq)
    assert [i for i, _ in panel.results] == [i for i, _ in shown]
    with qtbot.waitSignal(panel.resultsShown, timeout=20000):
        panel.hide_seen.setChecked(True)
    ids = [i for i, _ in panel.results]
    assert not set(ids) & set(seq)
    assert ids == [i for i, _ in rec.recommend(seq, k=30, exclude=tuple(seq))]


def test_edits_coalesce_and_stale_results_are_dropped(qtbot, panel, session, rec, model):
    session.set_recommender(rec, model[1])
    a, b = _histories(session)
    shown = []
    panel.resultsShown.connect(lambda r: shown.append([i for i, _ in r]))
    for n in range(2, 8):                 # a burst of edits: one request
        session.set_sequence(a[:n])
    qtbot.waitUntil(lambda: len(shown) == 1 and not panel.busy, timeout=20000)
    qtbot.wait(150)
    assert len(shown) == 1
    assert shown[0] == [i for i, _ in rec.recommend(a[:7], k=10, exclude=tuple(a[:7]))]

    shown.clear()
    from gui.model_calls import model_lock
    lock = model_lock(rec)
    lock.acquire()          # hold the model, so request A stays in flight however fast it is
    try:
        session.set_sequence(a[:4])
        qtbot.waitUntil(lambda: panel._req._task is not None, timeout=5000)   # A is in flight
        session.set_sequence(b[:5])                                            # B arrives meanwhile
    finally:
        lock.release()
    qtbot.waitUntil(lambda: len(shown) >= 1 and not panel.busy, timeout=20000)
    qtbot.wait(150)
    assert shown == [[i for i, _ in rec.recommend(b[:5], k=10, exclude=tuple(b[:5]))]]


def test_click_selects_and_drag_carries_ids(qtbot, panel, session, rec, model):
    session.set_recommender(rec, model[1])
    with qtbot.waitSignal(panel.resultsShown, timeout=20000):
        session.set_sequence(_histories(session, 1)[0][:5])
    row = panel.list.item(2)
    want = panel.results[2][0]
    rect = panel.list.visualItemRect(row)
    with qtbot.waitSignal(session.selectionChanged, timeout=3000) as sel:
        qtbot.mouseClick(panel.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert sel.args == [want]
    from gui.recommendations import MIME_ITEMS
    mime = panel.list.mimeData([panel.list.item(0), row])
    assert json.loads(bytes(mime.data(MIME_ITEMS)).decode()) == [panel.results[0][0], want]
    assert panel.list.dragEnabled()


def test_a_model_error_is_a_message(qtbot, panel, session, rec, model):
    session.set_recommender(rec, model[1])
    errors = []
    session.message.connect(lambda level, text: errors.append((level, text)))
    with qtbot.waitSignal(session.message, timeout=20000):
        session.set_sequence(["no-such-item-id"])
    assert errors and errors[0][0] == "error"
    assert panel.list.count() == 0 and "Could not recommend" in panel.status.text()
    with qtbot.waitSignal(panel.resultsShown, timeout=20000):   # and it goes on working
        session.set_sequence(_histories(session, 1)[0][:3])


def test_new_items_are_recommended_and_marked(qtbot, model, tmp_path):
    """A user-added (cold-start) item with the content of the top recommendation shows up, marked new."""
    import shutil

    import torch
    from core.features import store
    from core.workspace import Workspace
    from gui.model_calls import load_recommender
    from gui.recommendations import ID_ROLE, RecommendationsPanel
    from gui.state import Session
    src, ckpt = model
    ws_path = tmp_path / "ws"
    shutil.copytree(src, ws_path, ignore=shutil.ignore_patterns("runs", "zz-*"))
    with Workspace.open(ws_path) as ws:
        seqs = ws.sequences()
        seq = seqs[sorted(seqs)[0]][:6]
        top = load_recommender(ws_path / "models" / ckpt.name, ws_path).recommend(seq, k=1, exclude=seq)[0][0]
        new = ws.add_new_item(title="A film the user just added", text="added in the app")
    for m in ("text", "image"):
        fs = store.load(ws_path / "features", m)
        k = fs.index()[top]
        store.save(ws_path / "features", m, store.FeatureSet(
            ids=fs.ids + [new.id], vectors=torch.cat([fs.vectors, fs.vectors[k:k + 1]]),
            mask=torch.cat([fs.mask, fs.mask[k:k + 1]]), meta=fs.meta))
    s = Session()
    s.open_workspace(ws_path)
    s.set_recommender(load_recommender(ws_path / "models" / ckpt.name, ws_path), ws_path / "models" / ckpt.name)
    p = RecommendationsPanel(s)
    qtbot.addWidget(p)
    with qtbot.waitSignal(p.resultsShown, timeout=20000):
        s.set_sequence(seq)
    ids = [i for i, _ in p.results]
    assert new.id in ids and top in ids
    for n in range(p.list.count()):
        row = p.list.item(n)
        assert ("★ NEW" in row.text()) == (row.data(ID_ROLE) == new.id)
    from gui.workers import wait_all
    wait_all()
