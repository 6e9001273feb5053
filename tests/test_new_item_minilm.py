"""A user-added item end to end on real features: the demo workspace (real MiniLM text
features, catalog-tag keywords), a tiny MSM4SR trained on it, then an item added by the
user that is a twin of a catalog item (same title, text, image and tags). Its features
are computed by the real encoder (core.features.build.encode_items, not replaced) and it
must score like its twin, as a candidate and inside a sequence, once the twin's ID part
is switched off (the new item has none)."""
from __future__ import annotations

import shutil
from dataclasses import replace

import pytest
import torch

from core.config import load_config
from core.features import store
from core.features.build import CATALOG_TAGS, encode_items
from core.features.text import DEFAULT_NAME
from core.recommend import Recommender
from core.train import train
from core.workspace import Workspace
from model_fixtures import TINY

pytestmark = pytest.mark.slow

TWIN = "cheese"            # a demo item with text, an image and catalog tags
SCORE_TOL = 1e-3           # float16 feature files against freshly encoded float32 rows


@pytest.fixture(scope="module")
def demo(built_demo, tmp_path_factory):
    path = tmp_path_factory.mktemp("twin") / "demo"
    shutil.copytree(built_demo[0], path)
    ws = Workspace.open(path)
    cfg = load_config(overrides=dict(TINY, model="msm4sr", pretrain_epochs=1, finetune_epochs=2,
                                     finetune_lr=1e-3))
    result = train(ws, cfg, "train", run="twin")
    yield ws, result
    ws.close()


def _add_twin(ws: Workspace, item_id: str, title: str | None = None):
    it = ws.item(item_id)
    new = ws.add_new_item(title=title or it.title, text=it.text, image=it.image,
                          categories=it.categories)
    tags = ws.keywords(item_id, CATALOG_TAGS)[CATALOG_TAGS]
    with ws.transaction() as db:
        # the brand too: it is part of the first sentence the text model reads
        ws.upsert_items([replace(new, brand=it.brand)], db)
        ws.set_keywords([(new.id, CATALOG_TAGS, [(k.word, k.score) for k in tags])], db)
    return it, ws.item(new.id)


def _content_only(rec: Recommender) -> Recommender:
    rec.model.use_ids = False
    out = Recommender(rec.model, rec.cfg, rec.manifest, rec.folder, rec.ws, rec.device)
    out.add_new_items(rec.new_ids)
    return out


def test_a_user_added_twin_scores_like_its_twin(demo):
    ws, result = demo
    assert ws.get_meta("text_model")["identity"] == f"{DEFAULT_NAME}:384"   # the real MiniLM
    twin, new = _add_twin(ws, TWIN)
    assert new.is_new and new.id not in store.load(ws.features_dir, "text").index()

    # the real encoder gives the new item its twin's stored features
    text_fs, image_fs = encode_items(ws, [new])
    for m, fs in (("text", text_fs), ("image", image_fs)):
        stored = store.load(ws.features_dir, m)
        k = stored.index()[twin.id]
        assert torch.equal(fs.mask[0], stored.mask[k]), m
        assert torch.allclose(fs.vectors[0].float(), stored.vectors[k].float(), atol=2e-3), m

    loaded = Recommender.load(result.model_dir, ws)      # makes new:N known from its features
    assert new.id in loaded.new_ids
    rec = _content_only(loaded)
    seq = [i for i in ws.sequences()[sorted(ws.sequences())[0]] if i != TWIN][:8]
    everything = len(rec.item_ids) + len(rec.new_ids)

    # as a candidate: the same score as its twin
    scores = dict(rec.recommend(seq, k=everything))
    assert scores[new.id] == pytest.approx(scores[twin.id], abs=SCORE_TOL)
    # which is not a property of any item: most others score apart from the twin
    apart = [i for i in rec.item_ids if abs(scores[i] - scores[twin.id]) > 10 * SCORE_TOL]
    assert len(apart) > 0.9 * len(rec.item_ids)

    # inside a sequence: the new item stands for its twin
    with_new = dict(rec.recommend(seq + [new.id], k=everything))
    with_twin = dict(rec.recommend(seq + [twin.id], k=everything))
    assert set(with_new) == set(with_twin)
    assert max(abs(with_new[i] - with_twin[i]) for i in with_new) < SCORE_TOL
    assert max(abs(with_new[i] - scores[i]) for i in with_new) > 10 * SCORE_TOL  # it matters


def test_a_different_new_item_does_not_score_like_the_twin(demo):
    ws, result = demo
    other = next(i for i in ws.item_ids() if i != TWIN and not i.startswith("new:")
                 and ws.keywords(i, CATALOG_TAGS))
    twin = ws.item(TWIN)
    # the twin's tags, another item's title and text: the text modality differs
    o = ws.item(other)
    new = ws.add_new_item(title=o.title, text=o.text, image=twin.image, categories=twin.categories)
    tags = ws.keywords(TWIN, CATALOG_TAGS)[CATALOG_TAGS]
    with ws.transaction() as db:
        ws.set_keywords([(new.id, CATALOG_TAGS, [(k.word, k.score) for k in tags])], db)
    rec = _content_only(Recommender.load(result.model_dir, ws))
    seq = ws.sequences()[sorted(ws.sequences())[0]][:8]
    scores = dict(rec.recommend(seq, k=len(rec.item_ids) + len(rec.new_ids)))
    assert abs(scores[new.id] - scores[TWIN]) > 10 * SCORE_TOL
