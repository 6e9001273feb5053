"""Build a workspace's feature files: text (Sentence-BERT) and image (CLIP keywords).

Per item a content hash (model identity + its sentences, or keyword source + image
bytes) names its row: a rerun reuses unchanged rows; an interrupted run leaves its
finished batches in features/partial/ and the next run picks them up. The final files
are written atomically by core.features.store; features/cache/<modality>-hashes.json
records each row's hash next to the sha256 of the file it describes.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.errors import InputError, StudioError
from core.features import store
from core.features.images import load_image
from core.features.keywords import (DEFAULT_MODEL, DEFAULT_TAG, ClipUnavailable, KeywordExtractor,
                                    base_vocabulary, build_vocabulary, file_sha256, vocab_sha256)
from core.features.text import MAX_VECTORS, TextEncoder, item_sentences
from core.progress import silent

KEYWORDS_FROM = ("clip", "catalog-tags", "none")
CATALOG_TAGS = "catalog-tags"


@dataclass
class FeatureReport:
    text_items: int = 0
    image_items: int = 0
    images_missing: list[str] = field(default_factory=list)
    images_failed: list[tuple[str, str]] = field(default_factory=list)
    clip_available: bool = False
    clip_message: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    text_computed: int = 0   # rows encoded this run (the rest were reused)
    image_computed: int = 0
    keywords_from: str = "clip"
    image_source: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["images_failed"] = [list(x) for x in self.images_failed]
        return d


# ---- models, loaded once per process -----------------------------------------
@functools.lru_cache(maxsize=4)
def text_encoder(model: str | None = None, device: str | None = None) -> TextEncoder:
    return TextEncoder(model, device=device)


@functools.lru_cache(maxsize=2)
def _extractor(model: str, pretrained: str | None, weights: str | None, weights_sha: str | None,
               device: str | None) -> KeywordExtractor:
    return KeywordExtractor.load(model, pretrained=pretrained, weights=weights, device=device)


def keyword_extractor(model: str = DEFAULT_MODEL, pretrained: str | None = DEFAULT_TAG,
                      weights=None, device: str | None = None) -> KeywordExtractor:
    """A cached KeywordExtractor (the weights file's hash is part of the cache key)."""
    if weights is not None:
        w = Path(weights)
        sha = file_sha256(w) if w.is_file() and w.suffix.lower() == ".safetensors" else None
        return _extractor(model, None, str(w.resolve()), sha, device)
    return _extractor(model, pretrained, None, None, device)


# ---- content hashes ------------------------------------------------------------
def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def text_hash(identity: str, max_vectors: int, sentences: list[str]) -> str:
    return _digest("text", identity, str(max_vectors), *sentences)


def image_hash(item_id: str, source: str, vocab_sha: str, m: int, identity: str, content: str) -> str:
    """content: the image file's sha256 (CLIP) or the stored words (catalog tags). The item id
    is part of it: a reused row must come with that item's stored keywords."""
    return _digest("image", item_id, source, vocab_sha, str(m), identity, content)


# ---- reusable rows: the previous file and partial batches ---------------------------
def _hashes_path(ws, modality: str) -> Path:
    return ws.features_dir / "cache" / f"{modality}-hashes.json"


def _partial_dir(ws) -> Path:
    return ws.features_dir / "partial"


def _read_hashes(ws, modality: str) -> dict[str, str]:
    """id -> row hash of the current feature file; {} when unknown or out of date."""
    path, side = store.path_for(ws.features_dir, modality), _hashes_path(ws, modality)
    if not path.is_file() or not side.is_file():
        return {}
    try:
        data = json.loads(side.read_text())
        if data.get("file_sha256") != file_sha256(path):
            return {}
        return dict(zip(data["ids"], data["hashes"]))
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _save(ws, modality: str, fs: store.FeatureSet, hashes: dict[str, str],
          drop_partial: bool = True) -> None:
    """The feature file (atomic), then its hash sidecar, then (after a build) partial batches."""
    path = store.save(ws.features_dir, modality, fs)
    side = _hashes_path(ws, modality)
    side.parent.mkdir(parents=True, exist_ok=True)
    tmp = side.with_suffix(".tmp")
    tmp.write_text(json.dumps({"file_sha256": file_sha256(path), "ids": fs.ids,
                               "hashes": [hashes.get(i, "") for i in fs.ids]}))
    os.replace(tmp, side)
    if drop_partial:  # finished batches (and torn temporary files) are merged now
        for p in _partial_dir(ws).glob(f"{modality}-*"):
            p.unlink(missing_ok=True)


def _remove(ws, modality: str) -> None:
    store.path_for(ws.features_dir, modality).unlink(missing_ok=True)
    _hashes_path(ws, modality).unlink(missing_ok=True)


class _Pool:
    """hash -> (vectors [V, D], mask [V]) reusable for this modality; image partial batches
    also carry their CLIP keywords (hash -> [[word, score], ...])."""

    def __init__(self, ws, modality: str, V: int, D: int):
        from safetensors.torch import load_file
        self.rows: dict = {}
        self.keywords: dict[str, list] = {}
        self.ws, self.modality = ws, modality
        known = _read_hashes(ws, modality)
        if known:
            fs = store.load(ws.features_dir, modality)
            if fs is not None and tuple(fs.vectors.shape[1:]) == (V, D):
                for k, i in enumerate(fs.ids):
                    if known.get(i):
                        self.rows[known[i]] = (fs.vectors[k], fs.mask[k])
        for p in sorted(_partial_dir(ws).glob(f"{modality}-*.safetensors")):
            try:
                meta = store.read_meta(p)
                t = load_file(str(p))
                if tuple(t["vectors"].shape[1:]) != (V, D):
                    continue
                hashes = json.loads(meta["hashes"])
                for k, h in enumerate(hashes):
                    self.rows[h] = (t["vectors"][k], t["mask"][k].bool())
                if "keywords" in meta:   # CLIP keywords a rank scored without writing the DB
                    self.keywords.update(zip(hashes, json.loads(meta["keywords"])))
            except Exception:  # noqa: BLE001 - a torn partial file is simply recomputed
                continue

    def __contains__(self, h: str) -> bool:
        return h in self.rows

    def write_partial(self, hashes: list[str], vectors, mask, keywords=None) -> None:
        from safetensors.torch import save_file
        import torch
        d = _partial_dir(self.ws)
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{self.modality}-{_digest(*hashes)[:16]}.safetensors"
        tmp = path.with_suffix(".tmp")
        meta = {"hashes": json.dumps(hashes)}
        if keywords is not None:
            meta["keywords"] = json.dumps(keywords)
        save_file({"vectors": vectors.to(torch.float16).contiguous(),
                   "mask": mask.to(torch.uint8).contiguous()}, str(tmp), metadata=meta)
        os.replace(tmp, path)
        for h, v, m in zip(hashes, vectors, mask):
            self.rows[h] = (v.to(torch.float16), m.bool())


# ---- text ------------------------------------------------------------------------
def _share(todo: list[int], n_items: int, batch_size: int, shard: tuple[int, int] | None):
    """(the rows to encode here, done, total) for progress. Without a shard: every row of
    `todo`, counted over all n_items. With (rank, world): the rows of the batches numbered
    rank, rank + world, ... of `todo` cut into batches, counted over this rank's share.

    Only the last batch can be short, so cutting the result again gives the same batches
    one process would encode (same inputs per encode call, same numbers)."""
    if shard is None:
        return todo, n_items - len(todo), n_items
    rank, world = shard
    batches = [todo[s:s + batch_size] for s in range(0, len(todo), batch_size)]
    mine = [k for b, batch in enumerate(batches) if b % world == rank for k in batch]
    return mine, 0, len(mine)


def _text_rows(items, enc: TextEncoder, pool: _Pool | None, batch_size: int, progress,
               report: FeatureReport | None = None, shard: tuple[int, int] | None = None):
    """(vectors [N, V, D] float16, mask [N, V], hashes) for `items`.

    shard (rank, world): encode only this rank's batches into partial/ (the other rows
    stay empty; the caller keeps only the partial files)."""
    import torch
    V, D = MAX_VECTORS, enc.dim
    sentences = [item_sentences(it, V) for it in items]
    hashes = [text_hash(enc.identity, V, s) for s in sentences]
    vectors = torch.zeros(len(items), V, D, dtype=torch.float16)
    mask = torch.zeros(len(items), V, dtype=torch.bool)
    todo = []
    for k, h in enumerate(hashes):
        if pool is not None and h in pool:
            vectors[k], mask[k] = pool.rows[h]
        else:
            todo.append(k)
    todo, done, total = _share(todo, len(items), batch_size, shard)
    progress("text", done, total)
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        flat = [s for k in batch for s in sentences[k]]
        emb = enc.encode(flat).to(torch.float16)
        pos = 0
        for k in batch:
            n = len(sentences[k])
            vectors[k, :n], mask[k, :n] = emb[pos:pos + n], True
            pos += n
        if pool is not None:
            pool.write_partial([hashes[k] for k in batch], vectors[batch], mask[batch])
        done += len(batch)
        if report is not None:
            report.text_computed += len(batch)
        progress("text", done, total)
    return vectors, mask, hashes


def _text_meta(enc: TextEncoder) -> dict:
    return {"model": enc.identity, "dim": str(enc.dim), "max_vectors": str(MAX_VECTORS),
            "precision": enc.precision}


# ---- image keywords -----------------------------------------------------------------
class _WordVectors:
    """Sentence-BERT vectors of keywords, each word encoded once."""

    def __init__(self, enc: TextEncoder):
        self.enc, self.cache = enc, {}

    def __call__(self, words: list[str]):
        import torch
        new = sorted({w for w in words if w not in self.cache})
        if new:
            for w, v in zip(new, self.enc.encode(new).to(torch.float16)):
                self.cache[w] = v
        return torch.stack([self.cache[w] for w in words]) if words else None


def _load_all(paths):
    """Decode images on a few threads (Pillow releases the GIL while decoding)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(path):
        try:
            return load_image(path)
        except InputError as e:
            return e
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        return list(pool.map(one, paths))


def _image_rows(ws, items, enc: TextEncoder, extractor: KeywordExtractor | None, source: str,
                m: int, pool: _Pool | None, batch_size: int, progress,
                report: FeatureReport | None = None, store_keywords: bool = True,
                shard: tuple[int, int] | None = None):
    """(vectors [N, m, D], mask [N, m], hashes, problems {id: reason|None}).

    CLIP keywords are stored in the workspace as each batch finishes, and those of reused
    partial batches (a torchrun rank's, or a killed run's) when they are picked up.
    shard (rank, world): score only this rank's batches, into partial/ with their keywords."""
    import torch
    D = enc.dim
    vocab_sha = extractor.vocab_sha256 if extractor is not None else ""
    vectors = torch.zeros(len(items), m, D, dtype=torch.float16)
    mask = torch.zeros(len(items), m, dtype=torch.bool)
    hashes = [""] * len(items)
    problems: dict[str, str | None] = {}
    words_of: dict[int, list[str]] = {}
    todo, picked_up = [], []
    for k, it in enumerate(items):
        if extractor is None:  # catalog tags
            kws = ws.keywords(it.id, CATALOG_TAGS).get(CATALOG_TAGS, [])[:m]
            if not kws:
                problems[it.id] = "no catalog tags"
                continue
            words_of[k] = [kw.word for kw in kws]
            hashes[k] = image_hash(it.id, source, "", m, enc.identity, "\x1e".join(words_of[k]))
        else:
            path = ws.image_path(it)
            if path is None:
                problems[it.id] = "no image"
                continue
            if not path.is_file():
                problems[it.id] = str(InputError("image file not found", path=path))
                continue
            try:
                content = file_sha256(path)
            except OSError as e:
                problems[it.id] = str(InputError(f"image file not readable ({e.strerror or e})",
                                                 path=path))
                continue
            hashes[k] = image_hash(it.id, source, vocab_sha, m, enc.identity, content)
        problems[it.id] = None
        if pool is not None and hashes[k] in pool:
            vectors[k], mask[k] = pool.rows[hashes[k]]
            if extractor is not None and hashes[k] in pool.keywords:
                picked_up.append((it.id, source, [tuple(x) for x in pool.keywords[hashes[k]]]))
        else:
            todo.append(k)
    if store_keywords and picked_up:
        with ws.transaction() as db:
            ws.set_keywords(picked_up, db)
    words = _WordVectors(enc)
    todo, done, total = _share(todo, len(items), batch_size, shard)
    progress("keywords", done, total)
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        ok, found = [], None
        if extractor is not None:
            images = []
            for k, loaded in zip(batch, _load_all([ws.image_path(items[k]) for k in batch])):
                if isinstance(loaded, InputError):
                    problems[items[k].id] = str(loaded)
                    hashes[k] = ""
                else:
                    images.append(loaded)
                    ok.append(k)
            found = extractor.top_keywords(images, m)
            for k, kws in zip(ok, found):
                words_of[k] = [w for w, _ in kws]
            if store_keywords and ok:
                with ws.transaction() as db:
                    ws.set_keywords([(items[k].id, source, kws) for k, kws in zip(ok, found)], db)
        else:
            ok = list(batch)
        for k in ok:
            w = words_of[k]
            vectors[k, :len(w)], mask[k, :len(w)] = words(w), True
        if pool is not None and ok:
            pool.write_partial([hashes[k] for k in ok], vectors[ok], mask[ok],
                               None if found is None else [[list(x) for x in f] for f in found])
        done += len(batch)
        if report is not None:
            report.image_computed += len(ok)
        progress("keywords", done, total)
    return vectors, mask, hashes, problems


def _image_meta(source: str, m: int, enc: TextEncoder, extractor: KeywordExtractor | None) -> dict:
    meta = {"source": source, "keywords": str(m), "model": enc.identity, "dim": str(enc.dim)}
    if extractor is not None:
        meta.update(extractor.meta())
    return meta


def _store_problems(ws, problems: dict[str, str | None]) -> None:
    with ws.transaction() as db:
        for item_id, reason in problems.items():
            ws.set_problem(item_id, "image", reason, db)


def _vocabulary(ws, items, base=None) -> list[str]:
    """The workspace's keyword vocabulary: the base list plus the catalog's frequent words,
    fixed at the first build (so items added later do not change every image's keywords and
    trained models keep matching); a different base list makes a new one."""
    if base is None:
        base = base_vocabulary()
    elif not isinstance(base, (list, tuple)):
        base = base_vocabulary(Path(base))
    base_sha = vocab_sha256(sorted({w.strip().lower() for w in base if w.strip()}))
    kept = ws.get_meta("keyword_vocabulary")
    if kept and kept.get("base_sha256") == base_sha and vocab_sha256(kept["words"]) == kept["sha256"]:
        return kept["words"]
    words = build_vocabulary(items, base)
    ws.set_meta("keyword_vocabulary", {"base_sha256": base_sha, "sha256": vocab_sha256(words),
                                       "words": words})
    return words


# ---- the build -------------------------------------------------------------------------
def _check_options(keywords_from: str, top_m: int, batch_size: int) -> None:
    if keywords_from not in KEYWORDS_FROM:
        raise StudioError(f"keywords_from must be one of {', '.join(KEYWORDS_FROM)}, "
                          f"not {keywords_from!r}")
    if top_m < 1 or batch_size < 1:
        raise StudioError("top_m and batch_size must be at least 1")


def _items(ws):
    items = ws.items()
    if not items:
        raise StudioError(f"{ws.path}: the workspace has no items; import a catalog first")
    return items


def build_features(ws, text_model: str | None = None, clip_model: str = DEFAULT_MODEL,
                   clip_pretrained: str | None = DEFAULT_TAG, clip_weights=None,
                   keywords_from: str = "clip", top_m: int = 15, batch_size: int = 64,
                   progress=silent, device: str | None = None, vocabulary=None,
                   encoder: TextEncoder | None = None, text_precision: str = "auto") -> FeatureReport:
    """Write features/text.safetensors and, where keywords can be had, image.safetensors.

    vocabulary: the base keyword list (a list of words or a file, one word a line); None
    means assets/vocabulary.txt. The catalog's own frequent words are always added.
    encoder: a text encoder already loaded (for text_model on device), so it is not loaded twice.
    text_precision: TextEncoder's precision ("auto": bf16 on CPUs with native bf16)."""
    _check_options(keywords_from, top_m, batch_size)
    report = FeatureReport(keywords_from=keywords_from)
    items = _items(ws)

    t0 = time.perf_counter()
    enc = encoder or text_encoder(text_model, device)
    enc.batch_size = batch_size
    enc.set_precision(text_precision)
    report.seconds["load_text_model"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    pool = _Pool(ws, "text", MAX_VECTORS, enc.dim)
    vectors, mask, hashes = _text_rows(items, enc, pool, batch_size, progress, report)
    ids = [it.id for it in items]
    _save(ws, "text", store.FeatureSet(ids, vectors, mask, _text_meta(enc)), dict(zip(ids, hashes)))
    # where the model came from: machine-specific, so in the workspace, not in the feature file
    ws.set_meta("text_model", {"ref": enc.model_ref, "identity": enc.identity})
    report.text_items = len(items)
    report.seconds["text"] = time.perf_counter() - t0

    if keywords_from == "none":
        _remove(ws, "image")
        report.clip_message = "image keywords turned off (--keywords-from none)"
        ws.set_meta("image_modality", {"available": False, "reason": report.clip_message})
        return report

    extractor = None
    if keywords_from == "clip":
        t0 = time.perf_counter()
        try:
            extractor = keyword_extractor(clip_model, clip_pretrained, clip_weights, device)
        except ClipUnavailable as e:
            report.clip_message = str(e)
            _remove(ws, "image")
            ws.set_meta("image_modality", {"available": False, "reason": str(e)})
            report.seconds["load_clip"] = time.perf_counter() - t0
            return report
        report.clip_available = True
        report.seconds["load_clip"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        extractor.set_vocabulary(_vocabulary(ws, items, vocabulary),
                                 cache_dir=ws.features_dir / "cache", progress=progress)
        report.seconds["vocabulary"] = time.perf_counter() - t0
        source = extractor.source
    else:
        source = CATALOG_TAGS

    t0 = time.perf_counter()
    pool = _Pool(ws, "image", top_m, enc.dim)
    vectors, mask, hashes, problems = _image_rows(ws, items, enc, extractor, source, top_m, pool,
                                                  batch_size, progress, report)
    _store_problems(ws, problems)
    _save(ws, "image", store.FeatureSet(ids, vectors, mask, _image_meta(source, top_m, enc, extractor)),
          dict(zip(ids, hashes)))
    ws.set_meta("image_modality", {"available": True, "source": source,
                                   **({"clip_weights": extractor.weights}
                                      if extractor is not None and extractor.weights else {})})
    report.image_source = source
    report.image_items = int(mask.any(dim=1).sum())
    for it in items:
        reason = problems.get(it.id)
        if reason in ("no image", "no catalog tags"):
            report.images_missing.append(it.id)
        elif reason:
            report.images_failed.append((it.id, reason))
    report.seconds["keywords"] = time.perf_counter() - t0
    return report


# ---- the build under torchrun: core.features.distributed ---------------------------------
def build_features_distributed(ws, *args, **kwargs):
    from core.features.distributed import build_features_distributed as build
    return build(ws, *args, **kwargs)


# ---- features for items given on the fly ---------------------------------------------------
def _encoders_from_files(ws, device=None):
    """The text encoder, the files' metas, and the keyword extractor the image file was built
    with: a KeywordExtractor, CATALOG_TAGS, or a ClipUnavailable when its weights are gone."""
    text_path = store.path_for(ws.features_dir, "text")
    if not text_path.is_file():
        raise StudioError(f"{ws.path}: no text features yet; run `msm4sr features` first")
    tmeta = store.read_meta(text_path)
    ref = (ws.get_meta("text_model") or {}).get("ref") or None
    enc = text_encoder(ref, device)
    # new items in the catalog's arithmetic (bf16 is CPU autocast: a GPU encodes in fp32)
    enc.set_precision(tmeta.get("precision", "fp32") if enc.st.device.type == "cpu" else "fp32")
    if enc.identity != tmeta.get("model"):
        raise StudioError(f"{text_path}: built with text model {tmeta.get('model')!r}, but "
                          f"{enc.identity!r} loaded; rebuild the features")
    image_path = store.path_for(ws.features_dir, "image")
    if not image_path.is_file():
        return enc, tmeta, None, None
    imeta = store.read_meta(image_path)
    if imeta.get("source") == CATALOG_TAGS:
        return enc, tmeta, imeta, CATALOG_TAGS
    try:
        if imeta.get("clip_weights_sha256"):
            weights = (ws.get_meta("image_modality") or {}).get("clip_weights", "")
            if not weights or not Path(weights).is_file() or \
                    file_sha256(weights) != imeta["clip_weights_sha256"]:
                raise ClipUnavailable(f"the CLIP weights file the image features were built with "
                                      f"({weights or 'unknown'}) is missing or changed")
            ex = keyword_extractor(imeta["clip_model"], None, weights, device)
        else:
            ex = keyword_extractor(imeta["clip_model"], imeta.get("clip_pretrained"), None, device)
    except ClipUnavailable as e:
        return enc, tmeta, imeta, e
    if ex.vocab_sha256 != imeta.get("vocab_sha256") and \
            not ex.load_cached_vocabulary(ws.features_dir / "cache", imeta.get("vocab_sha256", "")):
        raise StudioError(f"{ws.features_dir / 'cache'}: the keyword vocabulary of {image_path} "
                          "is gone; rebuild the features")
    return enc, tmeta, imeta, ex


def _encode(ws, items, device=None, store_keywords=False, progress=silent):
    import torch
    enc, tmeta, imeta, ex = _encoders_from_files(ws, device)
    tv, tm, th = _text_rows(items, enc, None, 64, progress)
    meta = {k: v for k, v in tmeta.items() if k not in ("ids", "modality")}
    text_fs = store.FeatureSet([it.id for it in items], tv, tm, meta)
    if imeta is None:
        return text_fs, None, th, [], {}
    m = int(imeta["keywords"])
    meta = {k: v for k, v in imeta.items() if k not in ("ids", "modality")}
    if isinstance(ex, ClipUnavailable):  # keep rows aligned: empty image rows, with the reason
        image_fs = store.FeatureSet([it.id for it in items], torch.zeros(len(items), m, enc.dim),
                                    torch.zeros(len(items), m, dtype=torch.bool), meta)
        return text_fs, image_fs, th, [""] * len(items), {it.id: str(ex) for it in items}
    extractor = None if ex == CATALOG_TAGS else ex
    iv, im, ih, problems = _image_rows(ws, items, enc, extractor, imeta["source"], m, None, 64,
                                       progress, store_keywords=store_keywords)
    image_fs = store.FeatureSet([it.id for it in items], iv, im, meta)
    return text_fs, image_fs, th, ih, problems


def encode_items(ws, items, device: str | None = None):
    """(text FeatureSet, image FeatureSet or None) for items not necessarily in the workspace,
    with the same text model and keyword source as its feature files. The image set is None
    when the workspace has no image features or none of the items has a usable image."""
    text_fs, image_fs, _, _, _ = _encode(ws, list(items), device)
    if image_fs is not None and not bool(image_fs.mask.any()):
        image_fs = None
    return text_fs, image_fs


def _merge(old: store.FeatureSet, new: store.FeatureSet) -> store.FeatureSet:
    import torch
    index = old.index()
    vectors, mask, ids = old.vectors.clone(), old.mask.clone(), list(old.ids)
    extra = [k for k, i in enumerate(new.ids) if i not in index]
    for k, i in enumerate(new.ids):
        if i in index:
            vectors[index[i]], mask[index[i]] = new.vectors[k].to(vectors.dtype), new.mask[k]
    if extra:
        vectors = torch.cat([vectors, new.vectors[extra].to(vectors.dtype)])
        mask = torch.cat([mask, new.mask[extra]])
        ids += [new.ids[k] for k in extra]
    return store.FeatureSet(ids, vectors, mask, old.meta)


def add_items(ws, item_ids, progress=silent, device: str | None = None) -> None:
    """Compute and add (or refresh) the features and CLIP keywords of items added after the
    build, e.g. 'new:3'; the feature files are rewritten atomically."""
    items = []
    for i in item_ids:
        it = ws.item(i)
        if it is None:
            raise InputError("no such item in the workspace", item=i)
        items.append(it)
    if not items:
        return
    text_fs, image_fs, th, ih, problems = _encode(ws, items, device, store_keywords=True,
                                                  progress=progress)
    old_text = store.load(ws.features_dir, "text")
    hashes = _read_hashes(ws, "text")
    hashes.update(zip(text_fs.ids, th))
    _save(ws, "text", _merge(old_text, text_fs), hashes, drop_partial=False)
    if image_fs is not None:
        old_image = store.load(ws.features_dir, "image")
        hashes = _read_hashes(ws, "image")
        hashes.update(zip(image_fs.ids, ih))
        _store_problems(ws, problems)
        _save(ws, "image", _merge(old_image, image_fs), hashes, drop_partial=False)
