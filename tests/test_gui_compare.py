"""Compare models on real tiny trained models (MSM4SR and SASRec, both by `msm4sr train`):
side-by-side top-k equal to core.explore.compare, overlap and rank marks, the stored
metrics table, and Evaluate filling in a model that has no metrics."""
from __future__ import annotations

import json
import shutil

import pytest
from PySide6.QtCore import Qt

from gui_support import save_shot
from gui_tiny import TINY_SETS, cli, events, model, rec  # noqa: F401 - shared fixtures

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


@pytest.fixture(scope="module")
def sasrec(model):
    ws, _ = model
    sets = [a for s in TINY_SETS + ["model=sasrec"] for a in ("--set", s)]
    r = cli(["train", str(ws), "--progress-json", "--run", "tiny-sasrec", *sets])
    assert r.returncode == 0, r.stderr[-3000:]
    return [e for e in events(r.stdout) if e.get("event") == "done"][-1]["checkpoint"]


@pytest.fixture
def session(qtbot, model, rec):
    from gui.state import Session
    s = Session()
    s.open_workspace(model[0])
    s.set_recommender(rec, model[1])
    seqs = s.ws.sequences()
    s.set_sequence(seqs[sorted(seqs)[4]][:8])
    yield s
    from gui.workers import wait_all
    wait_all()


@pytest.fixture
def dialog(qtbot, session):
    from gui.compare import CompareDialog
    d = CompareDialog(session)
    qtbot.addWidget(d)
    d.show()
    return d


def test_side_by_side_matches_core_compare(qtbot, dialog, session, rec, model, sasrec):
    from core.explore.compare import compare
    from core.recommend import Recommender
    dialog.fill_models()
    dialog.set_ticked([model[1], sasrec])
    assert dialog.ticked() == [str(model[1]), str(sasrec)]
    with qtbot.waitSignal(dialog.compared, timeout=60000) as got:
        dialog.run_button.click()
    c = got.args[0]
    other = Recommender.load(sasrec, session.ws)
    want = compare(session.ws, {"a": rec, "b": other}, session.sequence, k=10, exclude_sequence=True)
    assert [i for i, _ in c.top[c.models[0]]] == [i for i, _ in want.top["a"]]
    assert [i for i, _ in c.top[c.models[1]]] == [i for i, _ in want.top["b"]]
    assert list(c.overlap.values()) == list(want.overlap.values())
    assert str(want.overlap["a|b"]) in dialog.overlap.text()
    # rank marks in the second column: ▲n / ▼n against the first model, "only here" when the first has not got it
    first = {i: r for r, (i, _) in enumerate(want.top["a"], 1)}
    expect = []
    for r, (i, _) in enumerate(want.top["b"], 1):
        if i not in first:
            expect.append("only here")
        elif first[i] != r:
            expect.append(f"{'▲' if first[i] > r else '▼'}{abs(first[i] - r)}")
        else:
            expect.append("")
    assert dialog.marks(1) == expect
    assert dialog.marks(0) == [""] * 10
    shaded = [dialog.side.item(r, 0).background().style() != Qt.NoBrush for r in range(10)]
    assert shaded == [i in dict(want.top["b"]) for i, _ in want.top["a"]]
    save_shot(dialog, "compare.png")


def test_metrics_table_and_evaluate_for_a_model_without_metrics(qtbot, dialog, session, model, tmp_path):
    from core.explore.compare import stored_metrics
    src = model[1]
    manifest = json.loads((src / "manifest.json").read_text())
    stored = stored_metrics(manifest, src)
    assert stored["evaluated"], "the tiny model is evaluated when trained"
    bare = tmp_path / "not-evaluated"
    shutil.copytree(src, bare)
    manifest["metrics"] = {}
    (bare / "manifest.json").write_text(json.dumps(manifest))
    dialog.fill_models(extra=[bare])
    dialog.set_ticked([src, bare])
    assert dialog.cell(str(src), "test R@10") == f"{stored['test']['recall@10']:.4f}"
    assert dialog.cell(str(bare), "test R@10") == "—"
    assert dialog.chosen_metrics_row() == str(bare)          # the one without metrics is chosen
    with qtbot.waitSignal(dialog.evaluated, timeout=300000) as got:
        dialog.evaluate_button.click()
    path, m = got.args
    assert path == str(bare)
    # same weights, same workspace: the evaluation gives the stored numbers back
    assert m["test"]["recall@10"] == pytest.approx(stored["test"]["recall@10"], abs=1e-6)
    assert m["valid"]["ndcg@10"] == pytest.approx(stored["valid"]["ndcg@10"], abs=1e-6)
    assert dialog.cell(str(bare), "test N@10") == f"{stored['test']['ndcg@10']:.4f}"
    assert "evaluated" in dialog.status.text()


def test_one_model_is_refused_plainly(qtbot, dialog, session, model):
    dialog.set_ticked([model[1]])
    dialog.run_button.click()
    assert "two or three" in dialog.status.text() and dialog.comparison is None
