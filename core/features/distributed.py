"""The feature build under torchrun: every rank encodes its share of the text batches and
scores its share of the image batches against the CLIP vocabulary, into features/partial/
(the resume mechanism); rank 0 alone then runs build_features, which finds every batch
there and writes the files and the database as one process does.

Only rank 0 writes the database: the other ranks' keywords travel in their partial files.
"""
from __future__ import annotations

from core.errors import StudioError
from core.features.build import (FeatureReport, _image_rows, _items, _Pool, _text_rows,
                                 _check_options, _vocabulary, build_features, keyword_extractor,
                                 text_encoder)
from core.features.keywords import DEFAULT_MODEL, DEFAULT_TAG, ClipUnavailable, vocab_sha256
from core.features.text import MAX_VECTORS
from core.progress import silent


def _together(step):
    """step() on every rank, then a collective check: a failure on any rank stops all ranks
    here (re-raised where it happened) instead of leaving the others at the next barrier."""
    from core import distributed
    try:
        out, error = step(), None
    except Exception as e:  # noqa: BLE001 - re-raised below, after the other ranks know
        out, error = None, e
    if distributed.any_rank(error is not None):
        if error is not None:
            raise error
        raise StudioError(f"rank {distributed.rank()}: another rank failed; see its error")
    return out


def _clip(ws, items, options: dict, device, progress):
    """The keyword extractor with the workspace's vocabulary on every rank, or None on every
    rank (no CLIP wanted, or its weights cannot be had: rank 0's build then says why).

    Rank 0 fixes the vocabulary (a database write at the first build) and caches its prompt
    embeddings; the others then read both, so every rank scores against the same tensor."""
    from core import distributed
    if options.get("keywords_from", "clip") != "clip":
        return None

    def load():
        try:
            return keyword_extractor(options.get("clip_model", DEFAULT_MODEL),
                                     options.get("clip_pretrained", DEFAULT_TAG),
                                     options.get("clip_weights"), device)
        except ClipUnavailable:
            return None
    ex = _together(load)
    if distributed.any_rank(ex is None):
        return None
    cache = ws.features_dir / "cache"

    def fix():
        if distributed.is_main():
            ex.set_vocabulary(_vocabulary(ws, items, options.get("vocabulary")), cache_dir=cache,
                              progress=progress)
    _together(fix)

    def read():
        if distributed.is_main():
            return
        kept = ws.get_meta("keyword_vocabulary") or {}
        sha = kept.get("sha256", "")
        if vocab_sha256(kept.get("words", [])) != sha or not ex.load_cached_vocabulary(cache, sha):
            raise StudioError(f"rank {distributed.rank()}: the keyword vocabulary rank 0 fixed "
                              f"is not in {cache}")
    _together(read)
    return ex


def build_features_distributed(ws, text_model: str | None = None, batch_size: int = 64,
                               progress=silent, device: str | None = None,
                               **options) -> tuple[FeatureReport | None, FeatureReport]:
    """build_features sharded over the torchrun ranks: (rank 0's report or None, this rank's
    share: its text_computed and image_computed).

    Shares are the batches numbered rank, rank + world, ... of what is left to do, cut as
    one process cuts them, so every encode call sees the same inputs as in one process.
    Without torchrun this is build_features in one process."""
    import torch
    from core import distributed
    _check_options(options.get("keywords_from", "clip"), options.get("top_m", 15), batch_size)
    items = _items(ws)
    shard = (distributed.rank(), distributed.world_size())
    mine = FeatureReport(keywords_from=options.get("keywords_from", "clip"))

    def load():
        enc = text_encoder(text_model, device)
        enc.set_precision(options.get("text_precision", "auto"))
        enc.batch_size = batch_size
        return enc, _Pool(ws, "text", MAX_VECTORS, enc.dim)
    # every rank has read partial/ before any rank writes there: all see the same batches
    enc, pool = _together(load)
    _together(lambda: _text_rows(items, enc, pool, batch_size, progress, mine, shard))

    ex = _clip(ws, items, options, device, progress)
    if ex is not None:
        top_m = options.get("top_m", 15)
        pool = _together(lambda: _Pool(ws, "image", top_m, enc.dim))
        _together(lambda: _image_rows(ws, items, enc, ex, ex.source, top_m, pool, batch_size,
                                      progress, mine, store_keywords=False, shard=shard))
    counts = distributed.all_reduce_sum(torch.tensor([float(mine.text_computed),
                                                      float(mine.image_computed)]))

    def merge():
        if not distributed.is_main():
            return None
        report = build_features(ws, text_model=text_model, batch_size=batch_size,
                                progress=progress, device=device, encoder=enc, **options)
        # the merge itself reused the ranks' batches
        report.text_computed += int(counts[0])
        report.image_computed += int(counts[1])
        return report
    return _together(merge), mine
