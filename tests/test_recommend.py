"""Recommender on real tiny trained models: top-k, exclusion, attention maps, new items."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core.data import left_pad
from core.features import store
from core.recommend import NewItem, Recommender
from core.workspace import Workspace
from model_fixtures import shared_trained

pytestmark = pytest.mark.realdata      # ../shared/datasets

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(ml1m, tmp_path_factory):
    return shared_trained(tmp_path_factory.mktemp("models"), ml1m)


@pytest.mark.parametrize("kind", ["msm4sr", "sasrec"])
def test_recommend_ranks_by_the_models_own_scores(trained, kind):
    ws = trained["ws"]
    rec = Recommender.load(trained[kind].model_dir, ws)
    seq = ws.sequences()[sorted(ws.sequences())[0]][:12]
    top = rec.recommend(seq, k=15)
    assert len(top) == 15 and len({i for i, _ in top}) == 15
    scores = [s for _, s in top]
    assert scores == sorted(scores, reverse=True)
    # the same numbers the evaluator computes from a padded batch
    model = rec.model
    inp = torch.from_numpy(left_pad([np.array([rec.index[i] for i in seq])], rec.cfg.max_len))
    with torch.no_grad():
        full = (model.user_vectors(inp) @ model.item_table().T)[0]
    best = torch.topk(full, 15)
    assert [rec.item_ids[c] for c in best.indices.tolist()] == [i for i, _ in top]
    assert np.allclose(best.values.numpy(), scores, atol=1e-4)
    # exclusion
    ex = [i for i, _ in top[:3]] + seq
    top2 = rec.recommend(seq, k=5, exclude=ex)
    assert not {i for i, _ in top2} & set(ex)
    assert [i for i, _ in top2] == [i for i, _ in top if i not in ex][:5]


@pytest.mark.parametrize("kind", ["msm4sr", "sasrec"])
def test_attention_maps_per_layer_match_the_sequence(trained, kind):
    ws = trained["ws"]
    rec = Recommender.load(trained[kind].model_dir, ws)
    ids = ws.item_ids()
    maps = rec.attention(ids[:7])
    assert len(maps) == rec.cfg.layers
    for m in maps:
        assert m.shape == (rec.cfg.heads, 7, 7)
        assert np.allclose(m.sum(-1), 1, atol=1e-4)
        assert np.all(np.triu(m, 1) == 0)
    long = rec.attention(ids[:rec.cfg.max_len + 9])
    assert long[0].shape == (rec.cfg.heads, rec.cfg.max_len, rec.cfg.max_len)


def _new_ws_item(ws, title, vec_from):
    """Add an is_new item and give it features (copied from a catalog item) in the files."""
    item = ws.add_new_item(title)
    for m in store.MODALITIES:
        fs = store.load(ws.features_dir, m)
        k = fs.index()[vec_from]
        fs = store.FeatureSet(fs.ids + [item.id], torch.cat([fs.vectors, fs.vectors[k:k + 1]]),
                              torch.cat([fs.mask, fs.mask[k:k + 1]]), fs.meta)
        store.save(ws.features_dir, m, fs)
    return item


def test_new_items_are_scored_from_their_features(trained, tmp_path):
    import shutil
    shutil.copytree(trained["ws"].path, tmp_path / "ws")
    ws = Workspace.open(tmp_path / "ws")
    twin_of = ws.item_ids()[5]
    new = _new_ws_item(ws, "A twin", twin_of)
    rec = Recommender.load(trained["msm4sr"].model_dir, ws)
    assert new.id in rec.new_ids
    # a new item with the same content as a catalog item scores like it minus the ID part:
    # with the ID switched off both are exactly equal
    rec.model.use_ids = False
    rec2 = Recommender(rec.model, rec.cfg, rec.manifest, rec.folder, ws, rec.device)
    rec2.add_new_items([new.id])
    seq = ws.item_ids()[10:20]
    scores = dict(rec2.recommend(seq, k=len(rec2.item_ids) + 1))
    assert scores[new.id] == pytest.approx(scores[twin_of], abs=1e-4)
    # in a sequence, the new item stands where its twin would (features only)
    a = dict(rec2.recommend(seq + [new.id], k=10))
    b = dict(rec2.recommend(seq + [twin_of], k=10))
    assert set(a) == set(b) and all(a[i] == pytest.approx(b[i], abs=1e-4) for i in a)
    # SASRec cannot represent it: it is left out, and its attention row is zero
    srec = Recommender.load(trained["sasrec"].model_dir, ws)
    assert srec.recommend(seq + [new.id], k=5) == srec.recommend(seq, k=5)
    att = srec.attention(seq + [new.id])[0]
    assert att.shape[-1] == 11 and np.all(att[:, -1] == 0)
    ws.close()


def test_exclusions_with_new_items_match_one_ranking_of_every_column(trained, tmp_path):
    """recommend ranks the catalog and the new items apart and leaves excluded columns out by
    lookup; the result is that of one ranking over every column, excluded ones dropped."""
    import shutil
    shutil.copytree(trained["ws"].path, tmp_path / "ws")
    ws = Workspace.open(tmp_path / "ws")
    new = [_new_ws_item(ws, f"New {k}", ws.item_ids()[k]).id for k in (2, 40)]
    rec = Recommender.load(trained["msm4sr"].model_dir, ws)
    assert rec.new_ids == new
    seq = ws.item_ids()[10:22]
    inp, emb, _, _ = rec._input(seq)
    with torch.no_grad():
        user = rec.model.user_vectors_from(emb, inp == 0).float()[0]
    ids = rec.item_ids + rec.new_ids
    scores = torch.cat([rec.table @ user, rec.new_table @ user]).tolist()
    for ban in ([], seq, seq + [new[0], "not-an-item"], [rec.item_ids[c] for c in
                                                          np.argsort(scores[:len(rec.item_ids)])[-5:]]):
        want = sorted(((i, v) for i, v in zip(ids, scores) if i not in set(ban)), key=lambda p: -p[1])
        ref = dict(want)
        for k in (1, 7, len(ids) + 3):
            got = rec.recommend(seq, k=k, exclude=ban)
            assert len(got) == min(k, len(want)) and not {i for i, _ in got} & set(ban), (len(ban), k)
            assert np.allclose([v for _, v in got], [v for _, v in want[:k]], atol=1e-5)
            assert all(abs(ref[i] - v) < 1e-5 for i, v in got)   # each id with its own score
            last = want[len(got) - 1][1]   # above the last score (ties there: any order)
            assert {i for i, v in got if v > last + 1e-5} == {i for i, v in want[:k] if v > last + 1e-5}
    assert len(rec.recommend(seq, k=10 ** 6, exclude=ids)) == 0
    ws.close()


def test_adhoc_new_item_via_encode_items(trained, tmp_path, monkeypatch):
    """NewItem(title, text) goes through core.features.build.encode_items. The test
    workspace's features come from no real encoder, so this single seam is replaced by
    a function returning the features of a known catalog item."""
    ws = trained["ws"]
    rec = Recommender.load(trained["msm4sr"].model_dir, ws)
    twin = ws.item_ids()[7]
    calls = []

    def fake_encode_items(ws_, items):
        calls.append([i.title for i in items])
        out = []
        for m in ("text", "image"):
            fs = store.load(ws_.features_dir, m)
            k = fs.index()[twin]
            out.append(store.FeatureSet([items[0].id], fs.vectors[k:k + 1], fs.mask[k:k + 1], fs.meta))
        return tuple(out)

    import core.features.build as build
    monkeypatch.setattr(build, "encode_items", fake_encode_items)
    rec.model.use_ids = False  # compare content only: the twin's ID part switched off
    rec = Recommender(rec.model, rec.cfg, rec.manifest, rec.folder, ws, rec.device)
    seq = ws.item_ids()[20:30]
    a = dict(rec.recommend(seq + [NewItem("Some film", text="A story.")], k=10))
    b = dict(rec.recommend(seq + [twin], k=10))
    assert set(a) == set(b) and all(a[i] == pytest.approx(b[i], abs=1e-4) for i in a)
    rec.recommend(seq + [NewItem("Some film", text="A story.")], k=10)
    assert calls == [["Some film"]]  # computed once, then cached


def test_unknown_item_is_an_input_error(trained):
    from core.errors import InputError
    rec = Recommender.load(trained["sasrec"].model_dir, trained["ws"])
    with pytest.raises(InputError, match="unknown item"):
        rec.recommend(["no-such-item"])


def test_cli_recommend_json(trained):
    ws = trained["ws"]
    ids = ws.item_ids()[:4]
    r = subprocess.run([sys.executable, "-m", "core.cli", "recommend", str(ws.path), "--model",
                        str(trained["msm4sr"].model_dir), "--items", ",".join(ids), "-k", "7", "--json"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    rec = Recommender.load(trained["msm4sr"].model_dir, ws)
    want = rec.recommend(ids, k=7)
    assert [o["item"] for o in out["recommendations"]] == [i for i, _ in want]
    assert out["recommendations"][0]["title"] == ws.item(want[0][0]).title
