"""Why this recommendation and the Similar tab, on a real tiny trained model: the bars are
core.explore.explain's numbers for the chosen recommendation, clicking another row explains
that one, and the Similar tab lists core.explore.similar's neighbours; a click adds one."""
from __future__ import annotations

import pytest

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
def panels(qtbot, session):
    from gui.explain import ExplainPanel, with_explain
    from gui.recommendations import RecommendationsPanel
    recs = RecommendationsPanel(session)
    why = ExplainPanel(session)
    split = with_explain(recs, why)
    qtbot.addWidget(split)
    split.resize(420, 900)
    split.show()
    return recs, why, split


def _seq(session, n=8):
    seqs = session.ws.sequences()
    return seqs[sorted(seqs)[2]][:n]


def test_bars_are_the_explanation_of_the_chosen_recommendation(qtbot, panels, session, rec, model):
    from core.explore.explain import explain
    recs, why, split = panels
    seq = _seq(session)
    session.set_recommender(rec, model[1])
    with qtbot.waitSignal(why.explained, timeout=30000) as got:
        session.set_sequence(seq)
    e = got.args[0]
    assert e.target == recs.results[0][0]              # the top one until another is chosen
    want = explain(session.ws, rec, seq, e.target)
    assert why.bars.rows == [(c.title or c.item_id, c.drop, c.attention) for c in want.contributions]
    assert len(why.bars.rows) == len(seq)
    # the longest bar is the item whose leaving out drops the score most
    drops = [abs(c.drop) for c in want.contributions]
    widths = [b - a for a, b in (why.bars.bar_extent(k) for k in range(len(seq)))]
    assert widths.index(max(widths)) == drops.index(max(drops))
    for s, w in zip(want.shared, e.shared):
        assert (s.item_id, s.keywords, s.words) == (w.item_id, w.keywords, w.words)
    assert f"score {want.score:.3f}" in why.heading.text() and f"rank {want.rank}" in why.heading.toolTip()
    qtbot.wait(50)
    save_shot(split, "explain.png")

    # choosing the third recommendation explains that one
    third = recs.list.item(2)
    with qtbot.waitSignal(why.explained, timeout=30000) as got:
        recs.list.setCurrentItem(third)
    from gui.recommendations import ID_ROLE
    target = third.data(ID_ROLE)
    assert got.args[0].target == target == why.target
    want = explain(session.ws, rec, seq, target)
    assert [r[1] for r in why.bars.rows] == [c.drop for c in want.contributions]


def test_no_model_or_no_sequence_says_so(qtbot, panels, session):
    _, why, _ = panels
    qtbot.waitUntil(lambda: "Choose a recommendation" in why.status.text(), timeout=5000)
    assert why.bars.rows == [] and why.explanation is None


@pytest.fixture
def similar(qtbot, session):
    from gui.inspector import InspectorPanel
    from gui.similar import SimilarPanel, inspector_tabs
    sim = SimilarPanel(session)
    tabs = inspector_tabs(InspectorPanel(session), sim)
    qtbot.addWidget(tabs)
    tabs.resize(360, 700)
    tabs.show()
    tabs.setCurrentWidget(sim)
    return sim, tabs


def test_similar_tab_lists_the_core_neighbours_and_a_click_adds_one(qtbot, similar, session, rec, model):
    from core.explore.similar import similar as core_similar
    sim, tabs = similar
    session.set_recommender(rec, model[1])
    item = _seq(session)[0]
    with qtbot.waitSignal(sim.shown, timeout=30000) as got:
        session.select(item)
    want = core_similar(session.ws, rec, item, k=sim.k.value(), by="model")
    assert [(n.item_id, n.score) for n in got.args[0]] == [(n.item_id, n.score) for n in want]
    assert sim.list.count() == len(want) and item not in [n.item_id for n in want]
    assert want[0].title in sim.list.item(0).text()
    save_shot(tabs, "similar.png")

    with qtbot.waitSignal(sim.shown, timeout=30000) as got:
        sim.by.setCurrentIndex(sim.by.findData("text"))
    want_text = core_similar(session.ws, None, item, k=sim.k.value(), by="text")
    assert [n.item_id for n in got.args[0]] == [n.item_id for n in want_text]

    session.set_sequence([item])
    sim.list.itemClicked.emit(sim.list.item(1))
    assert session.sequence == [item, want_text[1].item_id]
    sim.list.itemClicked.emit(sim.list.item(1))          # already there: not added twice
    assert session.sequence == [item, want_text[1].item_id]


def test_similar_by_keywords_without_keywords_says_why(qtbot, similar, session, rec, model):
    sim, _ = similar
    session.set_recommender(rec, model[1])
    sim.by.setCurrentIndex(sim.by.findData("keywords"))
    item = _seq(session)[0]
    session.select(item)
    qtbot.waitUntil(lambda: "no keywords" in sim.status.text(), timeout=30000)
    assert sim.list.count() == 0
