"""Amazon Scientific (sparse, text-only) end to end on a slice of its first users: the real
amazon2018 importer, real Sentence-BERT text features, a tiny MSM4SR trained text-only and
the evaluation as bench_model.py reports it. The full set is bench/bench_model.py's."""
from __future__ import annotations

import gzip
import json
import math

import pytest

from model_fixtures import TINY

pytestmark = pytest.mark.realdata      # ../shared/datasets

USERS = 40


@pytest.fixture(scope="module")
def sci(scientific, tmp_path_factory):
    """(workspace, the slice's reviews in file order, import report, feature report)."""
    from core.features.build import build_features
    from core.importers import ImportOptions, import_catalog
    from core.workspace import Workspace
    tmp = tmp_path_factory.mktemp("sci")
    lines, users = [], []
    with gzip.open(scientific / "reviews.json.gz", "rt") as f:
        for line in f:
            u = json.loads(line)["reviewerID"]
            if u not in users:
                if len(users) == USERS:
                    continue
                users.append(u)
            lines.append(line)
    (tmp / "reviews.json").write_text("".join(lines))
    ws = Workspace.create(tmp / "ws")
    # the slice is not 5-core any more (most items appear once among 40 users): keep all
    rep = import_catalog(ws, "amazon2018", {"reviews": tmp / "reviews.json",
                                            "meta": scientific / "meta.json.gz"},
                         ImportOptions(kcore=1, cold_share=0.1))
    feats = build_features(ws)   # default: CLIP keywords, which this catalog has no images for
    yield ws, [json.loads(x) for x in lines], rep, feats
    ws.close()


def test_import_keeps_each_users_order_and_all_text(sci):
    ws, reviews, rep, _ = sci
    assert rep.users == USERS and rep.interactions == len(reviews)
    want: dict[str, list[str]] = {}
    for r in reviews:   # timestamps are synthetic (item k = day k): file order is the truth
        want.setdefault(r["reviewerID"], []).append(r["asin"])
    assert ws.sequences() == want
    items = ws.items()
    assert len(items) == rep.items == len({r["asin"] for r in reviews})
    assert all(it.title for it in items)
    assert not any(it.image for it in items)   # the set has no image URLs
    assert sum(it.cold for it in items) == rep.cold_items > 0


def test_features_are_text_only_and_say_why(sci):
    ws, _, rep, feats = sci
    assert feats.text_items == rep.items
    assert feats.image_items == 0
    assert feats.clip_message   # said plainly, and the build went on
    assert sorted(p.stem for p in ws.features_dir.glob("*.safetensors")) == ["text"]


def test_tiny_msm4sr_trains_text_only_and_evaluates_honestly(sci):
    from core import checkpoint
    from core.config import load_config
    from core.data import load_dataset
    from core.evaluate import evaluate
    from core.train import train
    ws, _, _, _ = sci
    parts = set()

    def on_event(e):
        if e["event"] == "step" and e["stage"] == "pretrain":
            parts.update(e["losses"])

    cfg = load_config(overrides=dict(TINY, model="msm4sr", pretrain_epochs=2, finetune_epochs=2,
                                     device="cpu", seed=3))
    res = train(ws, cfg, "train", run="sci", on_event=on_event)
    # one modality: NIP in text space only; CMCL and mixup need two
    assert parts == {"nip_text"}, parts
    model, mcfg, manifest, _ = checkpoint.load_model(res.model_dir)
    assert manifest["config"]["modalities"] in ("auto", "text")
    ds = load_dataset(ws, mcfg, item_ids=manifest["item_ids"])
    model.set_features(ds.features)
    out = evaluate(model, ds, mcfg.max_len)
    assert "random" in out["ties"]
    for part in ("valid", "test"):
        assert out[part]["cases"] == len(getattr(ds, part)) > 0
        assert 0 <= out[part]["ndcg@10"] <= out[part]["recall@10"] <= out[part]["recall@20"] <= 1
    cold = out["cold"]
    assert cold["model"]["cases"] == cold["popularity"]["cases"] > 0
    assert "oracle" in cold["popularity_is"]
    assert math.isfinite(out["attention_gap"]) and out["attention_gap"] > 0
