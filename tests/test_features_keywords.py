"""CLIP keyword extraction with a tiny open_clip model of random weights.

No CLIP weights exist offline, so these tests prove the code path (weights loading,
zero-shot scoring, caching, the errors), not the meaning of the keywords.
"""
from __future__ import annotations

import pytest

import tiny_clip
from core.features.images import load_image
from core.features.keywords import (DEFAULT_TAG, ClipUnavailable, KeywordExtractor, base_vocabulary,
                                    build_vocabulary, catalog_words, vocab_sha256)
from core.workspace import Item

WORDS = ["dog", "cat", "car", "tree", "house", "mountain", "ocean", "face", "gun", "explosion",
         "city", "night", "fire", "snow", "flower", "robot", "space", "ship", "horse", "child"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return tiny_clip.save_weights(tmp_path_factory.mktemp("clip") / "tiny.safetensors")


@pytest.fixture(scope="module")
def extractor(weights):
    return KeywordExtractor.load(tiny_clip.register(), weights=weights)


def test_default_tag_is_known_to_open_clip():
    import open_clip
    assert ("ViT-B-32", DEFAULT_TAG) in open_clip.list_pretrained()


def test_weights_file_source_names_its_hash(extractor, weights):
    from core.features.keywords import file_sha256
    sha = file_sha256(weights)
    assert extractor.source == f"clip:{tiny_clip.NAME}:file={sha[:12]}"
    assert extractor.meta()["clip_weights_sha256"] == sha
    assert "clip_pretrained" not in extractor.meta()


@pytest.mark.realdata
def test_top_keywords_on_real_posters(extractor, ml1m, tmp_path):
    extractor.set_vocabulary(WORDS, cache_dir=tmp_path)
    images = [load_image(ml1m / "posters" / f"{k}.jpg") for k in (1, 2, 3)]
    out = extractor.top_keywords(images, m=5)
    assert len(out) == 3
    for kws in out:
        assert len(kws) == 5
        words = [w for w, _ in kws]
        assert len(set(words)) == 5 and set(words) <= set(WORDS)
        scores = [s for _, s in kws]
        assert scores == sorted(scores, reverse=True)
        assert all(0.0 < s <= 1.0 for s in scores) and sum(scores) <= 1.0 + 1e-5
    # m larger than the vocabulary: every word once
    assert len(extractor.top_keywords(images[:1], m=100)[0]) == len(WORDS)


def test_vocabulary_cache_is_written_and_reused(extractor, tmp_path):
    extractor.set_vocabulary(WORDS, cache_dir=tmp_path)
    files = list(tmp_path.glob("vocab-*.safetensors"))
    assert len(files) == 1
    first = extractor._vocab.clone()
    stamp = files[0].stat().st_mtime_ns
    extractor.set_vocabulary(WORDS, cache_dir=tmp_path)
    assert files[0].stat().st_mtime_ns == stamp  # read, not rewritten
    assert (extractor._vocab - first).abs().max() < 1e-6
    assert extractor.load_cached_vocabulary(tmp_path, vocab_sha256(WORDS))
    assert not extractor.load_cached_vocabulary(tmp_path, vocab_sha256(WORDS[:3]))


@pytest.fixture
def network(monkeypatch):
    """Counts what weight loading asks of the network (the real calls still run): socket
    connections with their timeouts, and hub downloads."""
    import socket
    import huggingface_hub
    seen = {"connect": [], "download": 0}
    connect, download = socket.create_connection, huggingface_hub.hf_hub_download

    def counting_connect(address, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, *a, **k):
        seen["connect"].append((address, timeout))
        return connect(address, timeout, *a, **k)

    def counting_download(*a, **k):
        seen["download"] += 1
        return download(*a, **k)
    monkeypatch.setattr(socket, "create_connection", counting_connect)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", counting_download)
    return seen


def test_missing_tag_offline_fails_fast_and_plainly(network):
    """Offline: the message says so and no connection or download is even tried
    (bench/bench_latency.py times it)."""
    with pytest.raises(ClipUnavailable) as e:
        KeywordExtractor.load("ViT-B-32", pretrained=DEFAULT_TAG)
    msg = str(e.value)
    assert f"CLIP weights for ViT-B-32 ({DEFAULT_TAG}) are not available" in msg
    assert "--clip-weights FILE.safetensors" in msg and "HF_HUB_OFFLINE" in msg
    assert network == {"connect": [], "download": 0}


def test_unknown_tag_lists_known_ones():
    with pytest.raises(ClipUnavailable, match="no such tag.*laion2b_s34b_b79k"):
        KeywordExtractor.load("ViT-B-32", pretrained="no-such-tag")


def test_pickle_weights_are_refused_without_reading(tmp_path):
    evil = tmp_path / "weights.pt"
    evil.write_bytes(b"not even read")
    with pytest.raises(ClipUnavailable, match="only .safetensors"):
        KeywordExtractor.load(tiny_clip.register(), weights=evil)


def test_missing_or_wrong_weights_file(tmp_path, weights):
    with pytest.raises(ClipUnavailable, match="not found"):
        KeywordExtractor.load(tiny_clip.register(), weights=tmp_path / "gone.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(ClipUnavailable, match="not usable CLIP weights"):
        KeywordExtractor.load(tiny_clip.register(), weights=junk)


def test_catalog_words_need_two_occurrences_and_skip_stop_words():
    items = [Item(id="1", title="The Dark Night", categories="Crime|Drama"),
             Item(id="2", title="Night of the Dark Moon", categories="Drama", text="A moon. Be"),
             Item(id="3", title="Sunny", categories="Comedy")]
    words = catalog_words(items)
    assert words == ["dark", "drama", "moon", "night"]
    vocab = build_vocabulary(items, base=["Tree", "dark"])
    assert vocab == sorted(set(vocab)) and "tree" in vocab and "moon" in vocab


def test_shipped_vocabulary():
    words = base_vocabulary()
    assert len(words) >= 3000 and len(set(words)) == len(words)
    assert all(w.isalpha() and w.islower() for w in words)


def test_unreachable_hub_fails_fast_without_offline_flag(monkeypatch, network):
    """Not offline, but the hub endpoint is a closed port on this machine: one short connect
    probe, then a plain message; no download and no retries (bench/bench_latency.py times it)."""
    from huggingface_hub import constants
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(ClipUnavailable, match="cannot be reached"):
        KeywordExtractor.load("ViT-B-32", pretrained=DEFAULT_TAG)
    assert [a for a, _ in network["connect"]] == [("127.0.0.1", 9)]
    assert 0 < network["connect"][0][1] <= 5 and network["download"] == 0


def test_short_context_vocabulary_equals_full_encode_text(extractor, tmp_path):
    import torch
    words = WORDS + ["a much longer phrase of several words"]
    extractor.set_vocabulary(words, cache_dir=None)
    assert extractor._short_ok is True  # the cut-context path was checked and is used
    with torch.no_grad():
        full = extractor.clip.encode_text(extractor.tokenizer(
            [f"a photo of {w}." for w in words])).float()
    full = full / full.norm(dim=-1, keepdim=True)
    assert torch.allclose(extractor._vocab, full, atol=1e-5)
