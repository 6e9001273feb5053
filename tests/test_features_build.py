"""build_features / encode_items / add_items / `msm4sr features` on real ml-1m items.

Text uses the real bundled MiniLM. Image keywords use a tiny open_clip model with
random weights saved as .safetensors: that proves the code path (weights file,
keywords stored, vectors and masks, caching, resume), not the meaning of keywords.
"""
from __future__ import annotations

import argparse
import io
import json
import shutil

import pytest
import torch
from PIL import Image

import tiny_clip
from core.features import store
from core.features.build import build_features, encode_items, add_items, text_encoder
from core.features.keywords import KeywordExtractor, file_sha256
from core.features.text import TextEncoder
from core.workspace import Item

N = 24
WORDS = ["dog", "cat", "car", "tree", "house", "mountain", "ocean", "face", "gun", "explosion",
         "city", "night", "fire", "snow", "flower", "robot", "space", "ship", "horse", "child"]


@pytest.fixture(scope="module")
def movies(ml1m):
    """The first N movies of movies.dat with their real posters (absolute paths)."""
    out = []
    for line in (ml1m / "movies.dat").read_text(encoding="latin-1").splitlines()[:N]:
        mid, title, genres = line.split("::")
        poster = ml1m / "posters" / f"{mid}.jpg"
        out.append(Item(id=mid, title=title, categories=genres,
                        image=str(poster) if poster.exists() else None))
    assert sum(1 for it in out if it.image) == N
    return out


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return tiny_clip.save_weights(tmp_path_factory.mktemp("clip") / "tiny.safetensors")


@pytest.fixture
def ws(workspace, movies):
    items = [*movies, Item(id="noimg", title="A film without a poster", categories="Drama")]
    with workspace.transaction() as db:
        workspace.upsert_items(items, db)
    return workspace


def build(ws, weights, **kw):
    kw.setdefault("vocabulary", WORDS)
    return build_features(ws, clip_model=tiny_clip.register(), clip_weights=weights, **kw)


@pytest.fixture
def counts(monkeypatch):
    """Counts real encoder calls (the real methods still run)."""
    seen = {"sentences": 0, "images": 0}
    encode, top = TextEncoder.encode, KeywordExtractor.top_keywords

    def counting_encode(self, sentences):
        seen["sentences"] += len(sentences)
        return encode(self, sentences)

    def counting_top(self, images, m=15):
        seen["images"] += len(images)
        return top(self, images, m)
    monkeypatch.setattr(TextEncoder, "encode", counting_encode)
    monkeypatch.setattr(KeywordExtractor, "top_keywords", counting_top)
    return seen


@pytest.mark.realdata
def test_weights_file_end_to_end(ws, weights, movies):
    report = build(ws, weights)
    sha = file_sha256(weights)
    source = f"clip:{tiny_clip.NAME}:file={sha[:12]}"
    assert report.clip_available and report.image_source == source
    assert report.text_items == N + 1 and report.image_items == N
    assert report.images_missing == ["noimg"] and report.images_failed == []

    text = store.load(ws.features_dir, "text")
    assert text.ids == ws.item_ids()
    assert tuple(text.vectors.shape) == (N + 1, 10, 384)
    assert text.mask[:, 0].all() and not text.mask[:, 1:].any()  # titles only: one sentence each
    assert text.meta["model"] == "all-MiniLM-L6-v2:384" and text.meta["max_vectors"] == "10"

    image = store.load(ws.features_dir, "image")
    assert image.ids == text.ids
    assert tuple(image.vectors.shape) == (N + 1, 15, 384)
    row = image.index()
    assert not image.mask[row["noimg"]].any() and not image.vectors[row["noimg"]].any()
    assert all(image.mask[row[it.id]].all() for it in movies)
    m = image.meta
    assert (m["source"], m["clip_model"], m["clip_weights_sha256"], m["keywords"]) == \
        (source, tiny_clip.NAME, sha, "15")
    assert m["model"] == "all-MiniLM-L6-v2:384" and len(m["vocab_sha256"]) == 64

    # keywords stored; an image's vectors are the MiniLM vectors of its keywords, in rank order
    kws = ws.keywords("1", source)[source]
    assert len(kws) == 15 and [k.score for k in kws] == sorted((k.score for k in kws), reverse=True)
    want = text_encoder().encode([k.word for k in kws]).half()
    assert torch.allclose(image.vectors[row["1"]].float(), want.float(), atol=2e-3)
    assert ws.problems("image") == [("noimg", "image", "no image")]
    assert ws.get_meta("image_modality") == {"available": True, "source": source,
                                             "clip_weights": str(weights.resolve())}
    assert ws.keyword_sources() == {source: N}


@pytest.mark.realdata
def test_bad_images_become_problems_and_nothing_else_is_lost(ws, weights, movies, tmp_path, ml1m):
    good = ml1m / "posters" / "1.jpg"
    bad = tmp_path / "bad"
    bad.mkdir()
    data = good.read_bytes()
    (bad / "cut.jpg").write_bytes(data[: len(data) // 2])
    (bad / "text.jpg").write_text("hello\n")
    buf = io.BytesIO()
    Image.open(good).save(buf, format="PNG")
    (bad / "png.jpg").write_bytes(buf.getvalue())
    broken = {"2": bad / "cut.jpg", "3": bad / "text.jpg", "4": bad / "png.jpg",
              "5": bad / "missing.jpg"}
    with ws.transaction() as db:
        ws.upsert_items([Item(id=i, title=f"movie {i}", image=str(p)) for i, p in broken.items()], db)

    report = build(ws, weights)
    failed = dict(report.images_failed)
    assert set(failed) == set(broken)
    assert "cut.jpg" in failed["2"] and "truncated" in failed["2"]
    assert "text.jpg" in failed["3"] and "not an image" in failed["3"]
    assert "png.jpg" in failed["4"] and "PNG" in failed["4"]
    assert "missing.jpg" in failed["5"] and "not found" in failed["5"]
    assert {i for i, _, _ in ws.problems("image")} == set(broken) | {"noimg"}

    image = store.load(ws.features_dir, "image")
    text = store.load(ws.features_dir, "text")
    row = image.index()
    for i in broken:
        assert not image.mask[row[i]].any()
    assert report.image_items == N - len(broken)
    assert int(image.mask.any(dim=1).sum()) == N - len(broken)
    assert text.mask[:, 0].all() and len(text.ids) == N + 1  # every item keeps its text

    # fixing one file clears its problem on the next run, and only it is recomputed
    shutil.copy(good, bad / "missing.jpg")
    report = build(ws, weights)
    assert "5" not in dict(report.images_failed) and report.image_computed == 1
    assert "5" not in {i for i, _, _ in ws.problems("image")}


@pytest.mark.realdata
def test_second_run_reuses_unchanged_rows(ws, weights, counts):
    build(ws, weights)
    first = {m: store.load(ws.features_dir, m) for m in ("text", "image")}
    assert counts["sentences"] > N and counts["images"] == N
    counts["sentences"] = counts["images"] = 0

    report = build(ws, weights)
    assert (report.text_computed, report.image_computed) == (0, 0)
    assert counts == {"sentences": 0, "images": 0}
    for m in ("text", "image"):
        again = store.load(ws.features_dir, m)
        assert again.ids == first[m].ids and torch.equal(again.vectors, first[m].vectors)

    with ws.transaction() as db:  # one changed title: one text row recomputed, images kept
        ws.upsert_items([Item(id="noimg", title="Another title entirely")], db)
    report = build(ws, weights)
    assert (report.text_computed, report.image_computed) == (1, 0)
    assert counts["sentences"] == 1 and counts["images"] == 0


@pytest.mark.realdata
def test_resume_after_interruption(ws, weights, counts):
    class Stop(Exception):
        pass

    text_encoded_before_keywords = []

    def stop_after(stage_name, limit):
        def progress(stage, done, total):
            if stage == "keywords" and not text_encoded_before_keywords:
                text_encoded_before_keywords.append(counts["sentences"])
            if stage == stage_name and done >= limit:
                raise Stop
        return progress

    with pytest.raises(Stop):
        build(ws, weights, batch_size=8, progress=stop_after("text", 16))
    assert not store.path_for(ws.features_dir, "text").exists()
    assert len(list((ws.features_dir / "partial").glob("text-*.safetensors"))) == 2
    assert counts["sentences"] == 16

    with pytest.raises(Stop):  # text resumes (the rest), then keywords stop after 2 batches
        build(ws, weights, batch_size=8, progress=stop_after("keywords", 16))
    assert text_encoded_before_keywords == [16 + (N + 1 - 16)]
    assert counts["images"] == 16
    assert store.path_for(ws.features_dir, "text").exists()
    assert not store.path_for(ws.features_dir, "image").exists()

    counts["sentences"] = counts["images"] = 0
    report = build(ws, weights, batch_size=8)
    assert report.text_computed == 0 and report.image_computed == N - 16
    assert counts["images"] == N - 16
    assert not list((ws.features_dir / "partial").glob("*.safetensors"))

    # the resumed result equals a build from scratch
    resumed = {m: store.load(ws.features_dir, m) for m in ("text", "image")}
    shutil.rmtree(ws.features_dir)
    build(ws, weights)
    for m in ("text", "image"):
        fresh = store.load(ws.features_dir, m)
        assert fresh.ids == resumed[m].ids and torch.equal(fresh.mask, resumed[m].mask)
        assert torch.allclose(fresh.vectors.float(), resumed[m].vectors.float(), atol=2e-3)


@pytest.mark.realdata
def test_clip_unavailable_still_builds_text(ws, weights):
    build(ws, weights)
    source = ws.get_meta("image_modality")["source"]
    report = build_features(ws)  # default ViT-B-32 + LAION tag: not on this machine, offline
    assert not report.clip_available
    assert "are not available" in report.clip_message and "--clip-weights" in report.clip_message
    assert report.text_items == N + 1
    assert store.load(ws.features_dir, "text") is not None
    assert not store.path_for(ws.features_dir, "image").exists()
    assert ws.get_meta("image_modality") == {"available": False, "reason": report.clip_message}
    assert ws.keyword_sources() == {source: N}  # stored keywords are kept


@pytest.mark.realdata
def test_catalog_tags_and_none(ws):
    with ws.transaction() as db:
        ws.set_keywords([("1", "catalog-tags", [("toy", 1.0), ("cowboy", 0.5)]),
                         ("2", "catalog-tags", [("jungle", 1.0)])], db)
    report = build_features(ws, keywords_from="catalog-tags", top_m=4)
    assert report.image_source == "catalog-tags" and report.image_items == 2
    image = store.load(ws.features_dir, "image")
    row = image.index()
    assert image.meta["source"] == "catalog-tags" and image.meta["keywords"] == "4"
    assert "clip_model" not in image.meta
    assert image.mask[row["1"]].tolist() == [True, True, False, False]
    assert image.mask[row["2"]].tolist() == [True, False, False, False]
    assert len(report.images_missing) == N + 1 - 2
    want = text_encoder().encode(["toy", "cowboy"]).half().float()
    assert torch.allclose(image.vectors[row["1"], :2].float(), want, atol=2e-3)

    report = build_features(ws, keywords_from="none")
    assert not store.path_for(ws.features_dir, "image").exists()
    assert ws.get_meta("image_modality")["available"] is False


@pytest.mark.realdata
def test_encode_items_and_add_items(ws, weights, ml1m):
    from core.features import build as fb
    build(ws, weights)
    source = ws.get_meta("image_modality")["source"]
    poster = ml1m / "posters" / "50.jpg"
    new = ws.add_new_item("A brand new film", text="It is new. Very new.", image=str(poster))
    caches = (fb.text_encoder, fb._extractor)
    before = [c.cache_info() for c in caches]
    text_fs, image_fs = encode_items(ws, [new])
    # the models the build loaded are reused from the in-process caches, never loaded again
    # (bench/bench_latency.py times encode_items)
    after = [c.cache_info() for c in caches]
    assert [a.misses for a in after] == [b.misses for b in before]
    assert all(a.hits > b.hits for a, b in zip(after, before))
    # new items are encoded in the arithmetic the catalog's file records
    assert fb.text_encoder().precision == store.read_meta(store.path_for(ws.features_dir, "text"))["precision"]
    assert text_fs.ids == [new.id] and text_fs.mask[0].tolist()[:4] == [True, True, True, False]
    assert image_fs is not None and image_fs.mask[0].all()
    assert image_fs.meta["source"] == source
    assert ws.keywords(new.id) == {}  # encode_items stores nothing

    plain = Item(id="tmp", title="No picture")
    t_fs, i_fs = encode_items(ws, [plain])
    assert i_fs is None and t_fs.vectors.shape == (1, 10, 384)

    add_items(ws, [new.id])
    text = store.load(ws.features_dir, "text")
    image = store.load(ws.features_dir, "image")
    assert text.ids[-1] == new.id and image.ids == text.ids and len(text.ids) == N + 2
    assert torch.equal(text.vectors[-1], text_fs.vectors[0])
    assert torch.allclose(image.vectors[-1].float(), image_fs.vectors[0].float())
    assert len(ws.keywords(new.id)[source]) == 15
    # the next build reuses the added rows
    report = build(ws, weights)
    assert (report.text_computed, report.image_computed) == (0, 0)


@pytest.mark.realdata
def test_add_items_needs_features_and_known_items(ws):
    from core.errors import InputError, StudioError
    with pytest.raises(StudioError, match="no text features"):
        add_items(ws, ["1"])
    with pytest.raises(InputError, match="nope"):
        add_items(ws, ["nope"])


def _cli(argv):
    from core.cli_features import add_commands
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.mark.realdata
def test_cli_json_report(ws, weights, capsys, tmp_path):
    vocab = tmp_path / "words.txt"
    vocab.write_text("\n".join(WORDS) + "\n")
    with ws.transaction() as db:
        ws.upsert_items([Item(id="bad", title="x", image="/nonexistent/poster.jpg")], db)
    ws_dir = str(ws.path)
    rc = _cli(["features", ws_dir, "--clip-model", tiny_clip.register(), "--clip-weights",
               str(weights), "--top-m", "5", "--vocabulary", str(vocab), "--json", "--report"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["text_items"] == N + 2 and out["image_items"] == N
    assert {p["item"] for p in out["problems"]} == {"bad", "noimg"}
    assert store.load(ws.features_dir, "image").vectors.shape[1] == 5

    rc = _cli(["features", ws_dir, "--report"])  # CLIP weights unavailable: still exit 0
    text = capsys.readouterr().out
    assert rc == 0 and "are not available" in text and "text features" in text


def test_cli_bad_workspace(tmp_path):
    from core.errors import WorkspaceError
    with pytest.raises(WorkspaceError):
        _cli(["features", str(tmp_path / "none")])
    with pytest.raises(SystemExit):
        _cli(["features", str(tmp_path), "--clip-pretrained", "x", "--clip-weights", "y"])


@pytest.mark.realdata
def test_add_items_when_clip_weights_are_gone(ws, weights, tmp_path):
    copy = tmp_path / "copy.safetensors"
    shutil.copy(weights, copy)
    build(ws, copy)
    copy.unlink()
    new = ws.add_new_item("Added later", image=str(weights))  # any path: CLIP cannot run anyway
    add_items(ws, [new.id])
    text = store.load(ws.features_dir, "text")
    image = store.load(ws.features_dir, "image")
    assert text.ids == image.ids and text.ids[-1] == new.id
    assert text.mask[-1, 0] and not image.mask[-1].any()
    (reason,) = [p for i, _, p in ws.problems("image") if i == new.id]
    assert "missing or changed" in reason


@pytest.mark.realdata
def test_feature_metadata_is_stable_strings(ws, weights):
    from core import cli_features
    from core.features.keywords import DEFAULT_MODEL, DEFAULT_TAG
    assert (cli_features.DEFAULT_MODEL, cli_features.DEFAULT_TAG) == (DEFAULT_MODEL, DEFAULT_TAG)
    build(ws, weights)
    text_meta = store.read_meta(store.path_for(ws.features_dir, "text"))
    image_meta = store.read_meta(store.path_for(ws.features_dir, "image"))
    text_meta.pop("ids"), image_meta.pop("ids")
    from core.features.text import native_bf16
    assert text_meta == {"model": "all-MiniLM-L6-v2:384", "dim": "384", "max_vectors": "10",
                         "modality": "text", "precision": "bf16" if native_bf16() else "fp32"}
    assert set(image_meta) == {"source", "clip_model", "clip_weights_sha256", "vocab_sha256",
                               "keywords", "model", "dim", "modality"}
    assert str(weights) not in json.dumps(image_meta)  # no machine-specific paths
