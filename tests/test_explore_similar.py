"""Similar items on real tiny trained models: by model vectors, text features, keywords."""
import json
import shutil

import numpy as np
import pytest
import torch

from core.cli import main
from core.errors import InputError
from core.explore.similar import similar
from core.features import store
from core.recommend import Recommender
from core.workspace import Workspace
from model_fixtures import shared_trained

pytestmark = pytest.mark.realdata      # ../shared/datasets


@pytest.fixture(scope="module")
def trained(ml1m, tmp_path_factory):
    return shared_trained(tmp_path_factory.mktemp("models"), ml1m)


@pytest.fixture
def tagged(trained, tmp_path):
    """A copy of the shared workspace whose items carry their genres as keywords."""
    shutil.copytree(trained["ws"].path, tmp_path / "ws")
    ws = Workspace.open(tmp_path / "ws")
    with ws.transaction() as db:
        ws.set_keywords([(i.id, "catalog-tags", [(g, 1.0) for g in i.categories.split("|") if g])
                         for i in ws.items()], db)
    yield ws
    ws.close()


def _check_nearest(ids, vecs, item, found, k):
    """found are the k highest cosines to item, item itself excluded, best first."""
    v = torch.nn.functional.normalize(torch.as_tensor(vecs, dtype=torch.float64), dim=1)
    cos = dict(zip(ids, (v @ v[ids.index(item)]).tolist()))
    got = [n.item_id for n in found]
    assert len(got) == k and item not in got and len(set(got)) == k
    assert [n.score for n in found] == sorted((n.score for n in found), reverse=True)
    for n in found:
        assert abs(n.score - cos[n.item_id]) < 1e-5
    worst = min(cos[i] for i in got)
    assert all(c <= worst + 1e-9 for i, c in cos.items() if i not in got and i != item)


@pytest.mark.parametrize("kind", ["msm4sr", "sasrec"])
def test_by_model_returns_the_highest_cosines_without_the_item(trained, kind):
    ws = trained["ws"]
    rec = Recommender.load(trained[kind].model_dir, ws)
    for item in rec.item_ids[:3]:
        found = similar(ws, rec, item, k=8, by="model")
        _check_nearest(rec.item_ids, rec.table.detach(), item, found, 8)


def test_by_text_uses_the_mean_text_vector(trained):
    ws = trained["ws"]
    fs = store.load(ws.features_dir, "text")
    m = fs.mask.float()
    mean = (fs.vectors.float() * m[..., None]).sum(1) / m.sum(1, keepdim=True)
    item = fs.ids[7]
    found = similar(ws, None, item, k=6, by="text")
    _check_nearest(fs.ids, mean, item, found, 6)


def test_by_keywords_ranks_by_jaccard_overlap(tagged):
    items = {i.id: set(i.categories.split("|")) - {""} for i in tagged.items()}
    item = next(i for i, g in items.items() if len(g) >= 2)
    found = similar(tagged, None, item, k=10, by="keywords")
    jac = {o: len(items[item] & g) / len(items[item] | g) for o, g in items.items() if o != item}
    assert item not in [n.item_id for n in found] and len(found) == 10
    for n in found:
        assert abs(n.score - jac[n.item_id]) < 1e-6
        assert n.shared == sorted(w.lower() for w in items[item] & items[n.item_id])
    assert found[0].score == max(jac.values())
    assert min(n.score for n in found) >= sorted(jac.values(), reverse=True)[9] - 1e-9


def test_unknown_items_and_bad_arguments_are_named(trained, tagged):
    ws = trained["ws"]
    rec = Recommender.load(trained["msm4sr"].model_dir, ws)
    with pytest.raises(InputError, match="no-such-item"):
        similar(ws, rec, "no-such-item", by="model")
    with pytest.raises(InputError, match="no-such-item"):
        similar(ws, None, "no-such-item", by="text")
    with pytest.raises(InputError, match="no keywords"):
        similar(ws, None, rec.item_ids[0], by="keywords")      # this workspace has none
    with pytest.raises(InputError, match="-k 0"):
        similar(ws, rec, rec.item_ids[0], k=0)


def test_cli_similar_json_and_text(trained, capsys):
    ws = trained["ws"]
    rec = Recommender.load(trained["msm4sr"].model_dir, ws)
    item = rec.item_ids[2]
    args = ["similar", str(ws.path), "--model", str(trained["msm4sr"].model_dir), "--item", item, "-k", "4"]
    assert main(args + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [n["item_id"] for n in out["similar"]] == [n.item_id for n in similar(ws, rec, item, k=4)]
    assert main(args + ["--by", "text"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 4
    assert main(args[:-4] + ["--item", "zzz"]) == 2
    assert "'zzz'" in capsys.readouterr().err
    assert np.isfinite([n["score"] for n in out["similar"]]).all()
    # text and keywords need no model; by model does
    assert main(["similar", str(ws.path), "--item", item, "--by", "text", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["similar"]) == 10
    assert main(["similar", str(ws.path), "--item", item]) == 2
    assert "--model" in capsys.readouterr().err


def test_kept_vectors_follow_changed_features_and_new_items(trained, tmp_path):
    from test_explore_map import _new_item_with_features
    shutil.copytree(trained["ws"].path, tmp_path / "ws")
    ws = Workspace.open(tmp_path / "ws")
    a, b = ws.item_ids()[4], ws.item_ids()[40]
    first = similar(ws, None, a, k=3, by="text")
    assert b not in [n.item_id for n in first]
    # the text features change on disk: b becomes a's twin, and the next query sees it
    fs = store.load(ws.features_dir, "text")
    idx = fs.index()
    fs.vectors[idx[b]] = fs.vectors[idx[a]]
    fs.mask[idx[b]] = fs.mask[idx[a]]
    store.save(ws.features_dir, "text", fs)
    again = similar(ws, None, a, k=3, by="text")
    assert again[0].item_id == b and again[0].score == pytest.approx(1.0, abs=1e-6)
    # a new item made known to a loaded model is among its neighbours by model vectors
    rec = Recommender.load(trained["msm4sr"].model_dir, ws)
    similar(ws, rec, a, k=3)
    item = _new_item_with_features(ws, "Twin of a", a)
    rec.add_new_items([item.id])
    found = similar(ws, rec, item.id, k=5)
    assert len(found) == 5 and item.id not in [n.item_id for n in found]
    assert item.id in [n.item_id for n in similar(ws, rec, a, k=len(rec.item_ids))]
    ws.close()
