"""Why a recommendation, on real trained models: the batched leave-one-out scores are the
scores the model gives each shortened sequence, the attention row is the model's, and the
shared keywords and words are the target's and the contributors' own."""
import json
import shutil

import numpy as np
import pytest

from core.cli import main
from core.errors import InputError
from core.explore.explain import explain
from core.explore.items import title_words
from core.recommend import Recommender
from core.workspace import Workspace
from model_fixtures import shared_trained


@pytest.fixture(scope="module")
def trained(ml1m, tmp_path_factory):
    return shared_trained(tmp_path_factory.mktemp("models"), ml1m)


def _score(rec, seq, target) -> float:
    """The target's score for seq, read from a full ranking (an independent path)."""
    n = len(rec.item_ids) + len(rec.new_ids)
    return dict(rec.recommend(seq, k=n))[target]


@pytest.mark.realdata
@pytest.mark.parametrize("kind", ["msm4sr", "sasrec"])
def test_leaving_out_each_item_matches_rescoring_the_shorter_sequence(trained, kind):
    ws = trained["ws"]
    rec = Recommender.load(trained[kind].model_dir, ws)
    seq = ws.sequences()[sorted(ws.sequences())[3]][:9]
    top = rec.recommend(seq, k=3)
    for target, score in top[:2]:
        e = explain(ws, rec, seq, target)
        assert e.rank == [i for i, _ in top].index(target) + 1
        assert abs(e.score - score) < 1e-3
        assert [c.item_id for c in e.contributions] == seq
        for j, c in enumerate(e.contributions):
            without = _score(rec, seq[:j] + seq[j + 1:], target)
            assert abs(c.score_without - without) < 1e-3 * max(1, abs(without))
            assert abs(c.drop - (score - without)) < 1e-3 * max(1, abs(without))
        # the item the model depends on most: leaving it out lowers the score the most
        most = e.by_drop()[0]
        drops = [score - _score(rec, seq[:j] + seq[j + 1:], target) for j in range(len(seq))]
        assert most.position == int(np.argmax(drops))
    # with the sequence excluded, the rank is the one in the list that leaves it out
    listed = rec.recommend(seq, k=3, exclude=seq)
    assert explain(ws, rec, seq, listed[1][0], exclude=seq).rank == 2


@pytest.mark.realdata
def test_attention_row_is_the_last_positions_and_long_sequences_are_clipped(trained):
    ws = trained["ws"]
    rec = Recommender.load(trained["msm4sr"].model_dir, ws)
    seq = ws.item_ids()[:rec.cfg.max_len + 5]
    target = rec.recommend(seq, k=1)[0][0]
    e = explain(ws, rec, seq, target)
    maps = rec.attention(seq)
    assert len(e.attention) == rec.cfg.layers
    for layer, rows in zip(maps, e.attention):
        assert np.allclose(np.array(rows), layer[:, -1, :], atol=1e-5)
        assert np.allclose(np.array(rows).sum(1), 1, atol=1e-4)
    # only the last max_len items are read by the model, and so explained
    assert len(e.contributions) == rec.cfg.max_len
    assert [c.position for c in e.contributions] == list(range(5, rec.cfg.max_len + 5))
    assert [c.item_id for c in e.contributions] == seq[5:]
    assert np.allclose([c.attention for c in e.contributions], maps[-1][:, -1, :].mean(0), atol=1e-5)


@pytest.mark.realdata
def test_shared_keywords_and_words_of_the_top_contributors(trained, tmp_path):
    shutil.copytree(trained["ws"].path, tmp_path / "ws")
    ws = Workspace.open(tmp_path / "ws")
    with ws.transaction() as db:
        ws.set_keywords([(i.id, "catalog-tags", [(g, 1.0) for g in i.categories.split("|") if g])
                         for i in ws.items()], db)
    rec = Recommender.load(trained["msm4sr"].model_dir, ws)
    seq = ws.sequences()[sorted(ws.sequences())[5]][:12]
    target = rec.recommend(seq, k=1)[0][0]
    e = explain(ws, rec, seq, target, top=4)
    best = [c for c in e.by_drop() if c.drop > 0][:4]
    assert [s.item_id for s in e.shared] == [c.item_id for c in best]
    genres = lambda i: {g.lower() for g in ws.item(i).categories.split("|") if g}  # noqa: E731
    for s in e.shared:
        assert s.keywords == sorted(genres(target) & genres(s.item_id))
        assert s.words == sorted(title_words(ws.item(target).title) & title_words(s.title))
    ws.close()


@pytest.mark.realdata
def test_errors_name_the_item(trained):
    ws = trained["ws"]
    rec = Recommender.load(trained["msm4sr"].model_dir, ws)
    seq = ws.item_ids()[:3]
    with pytest.raises(InputError, match="nope"):
        explain(ws, rec, seq, "nope")
    with pytest.raises(InputError, match="missing-1"):
        explain(ws, rec, seq + ["missing-1"], seq[0])
    with pytest.raises(InputError, match="at least one"):
        explain(ws, rec, [], seq[0])
    one = explain(ws, rec, seq[:1], seq[1])
    assert one.contributions[0].drop is None     # nothing is left to score from


def test_shipped_demo_model_explains_its_top_recommendation(built_demo, capsys):
    from core.demo import DEMO_MODEL, demo_sequence
    path, _ = built_demo
    with Workspace.open(path) as ws:
        seq = demo_sequence(ws)
        rec = Recommender.load(DEMO_MODEL, ws)
        target = rec.recommend(seq, k=1, exclude=seq)[0][0]
        e = explain(ws, rec, seq, target)
        kw = lambda i: {k.word.lower() for ks in ws.keywords(i).values() for k in ks}  # noqa: E731
        for s in e.shared:
            assert s.keywords == sorted(kw(target) & kw(s.item_id))
        assert e.shared and e.shared[0].drop == max(c.drop for c in e.contributions)
        assert explain(ws, rec, seq, target, exclude=seq).rank == 1   # as in the list without the sequence
    assert main(["explain", str(path), "--model", str(DEMO_MODEL), "--items", ",".join(seq),
                 "--target", target, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["target"] == target and len(out["contributions"]) == len(seq)
    assert [c["drop"] for c in out["contributions"]] == [c.drop for c in e.contributions]


@pytest.mark.realdata
def test_new_items_in_the_sequence(trained, tmp_path):
    from test_explore_map import _new_item_with_features
    shutil.copytree(trained["ws"].path, tmp_path / "ws")
    ws = Workspace.open(tmp_path / "ws")
    seq = ws.item_ids()[20:26]
    item = _new_item_with_features(ws, "A new film", seq[2])
    seq = seq[:3] + [item.id] + seq[3:]
    rec = Recommender.load(trained["msm4sr"].model_dir, ws)
    target = rec.recommend(seq, k=1)[0][0]
    e = explain(ws, rec, seq, target)
    c = e.contributions[3]
    assert c.item_id == item.id and c.title == "A new film"
    assert abs(c.score_without - _score(rec, seq[:3] + seq[4:], target)) < 1e-3
    # a new item can be the target too
    e2 = explain(ws, rec, seq[:3], item.id)
    assert abs(e2.score - _score(rec, seq[:3], item.id)) < 1e-3
    # SASRec does not see new items: no contribution for it, the others still scored
    sas = Recommender.load(trained["sasrec"].model_dir, ws)
    e3 = explain(ws, sas, seq, seq[0])
    assert e3.contributions[3].drop is None
    assert all(x.drop is not None for j, x in enumerate(e3.contributions) if j != 3)
    with pytest.raises(InputError, match=item.id):
        explain(ws, sas, seq, item.id)
    ws.close()


@pytest.mark.realdata
@pytest.mark.parametrize("kind", ["msm4sr", "sasrec"])
def test_last_position_pass_equals_the_models_user_vectors(trained, kind):
    """explain's shortcut (the last block for the last query only) gives the model's numbers."""
    import torch
    from core.explore.explain import _loo_index, _users
    ws = trained["ws"]
    rec = Recommender.load(trained[kind].model_dir, ws)
    seq = ws.sequences()[sorted(ws.sequences())[2]][:rec.cfg.max_len]
    inp, emb, _, _ = rec._input(seq)
    g = _loo_index(inp.shape[1])
    inp_b = torch.cat([inp[0], inp.new_zeros(1)])[g]
    with torch.no_grad():
        if emb is None:
            want, got = rec.model.user_vectors(inp_b), _users(rec, inp_b, None)
        else:
            emb_b = {m: torch.cat([v[0], rec.inputs[m][:1]])[g] for m, v in emb.items()}
            want, got = rec.model.user_vectors_from(emb_b, inp_b == 0), _users(rec, inp_b, emb_b)
    assert got.shape == want.shape == (len(seq) + 1, want.shape[1])
    assert torch.allclose(got, want.float(), atol=1e-5, rtol=1e-5)
