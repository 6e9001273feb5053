"""Nearest items to one item: by the model's item vectors (cosine), by the text
feature vectors (cosine of each item's mean Sentence-BERT vector), or by keyword
overlap (Jaccard over the keywords of every source, e.g. CLIP or catalog tags).

    similar(ws, rec, "1196", k=10, by="model") -> [Neighbour(item_id, title, score, shared)]

The item itself is never among its neighbours."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from core.errors import InputError
from core.explore.items import keyword_sets, model_items, normalise, row_of

BY = ("model", "text", "keywords")


@dataclass
class Neighbour:
    """score: cosine (model, text) or Jaccard (keywords); shared: the common keywords."""
    item_id: str
    title: str
    score: float
    shared: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def model_vectors(rec) -> tuple[list[str], np.ndarray]:
    """(ids, unit-length rows of the model's scoring table), kept on the Recommender until
    its new items change (one normalisation, not one per query)."""
    ids, table = model_items(rec)
    got = getattr(rec, "_unit_table", None)
    if got is None or got[0] != ids:
        got = (ids, normalise(table.cpu().double().numpy()))
        rec._unit_table = got
    return got


_TEXT: dict = {}   # feature file -> ((mtime_ns, size), ids, vectors): the last one read


def text_vectors(ws) -> tuple[list[str], np.ndarray]:
    """(ids, unit-length mean text vector per item) from WS/features; items without any
    text vector are left out. Kept until the feature file changes."""
    from core.features import store
    path = store.path_for(ws.features_dir, "text")
    try:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = None
    hit = _TEXT.get(str(path))
    if stamp is not None and hit is not None and hit[0] == stamp:
        return hit[1], hit[2]
    fs = store.load(ws.features_dir, "text")
    if fs is None:
        raise InputError(f"{ws.path}: no text features yet (run `msm4sr features {ws.path}`)")
    mask = fs.mask.numpy()
    vec = (fs.vectors.float().numpy() * mask[..., None]).sum(1) / np.maximum(mask.sum(1), 1)[:, None]
    keep = mask.any(1) & (np.linalg.norm(vec, axis=1) > 0)
    ids, unit = [i for i, k in zip(fs.ids, keep) if k], normalise(vec[keep].astype(np.float64))
    _TEXT.clear()
    _TEXT[str(path)] = (stamp, ids, unit)
    return ids, unit


def _top_cosine(ids, vecs, item_id, k, what) -> list[tuple[str, float]]:
    r = row_of(ids, item_id, what)
    cos = vecs @ vecs[r]
    cos[r] = -np.inf
    k = min(k, len(ids) - 1)
    if k <= 0:
        return []
    top = np.argpartition(-cos, k - 1)[:k]
    top = top[np.lexsort((np.array([ids[t] for t in top]), -cos[top]))]   # score, then id
    return [(ids[t], float(cos[t])) for t in top]


def _top_keywords(ws, item_id, k) -> list[tuple[str, float, list[str]]]:
    sets = keyword_sets(ws)
    mine = sets.get(item_id)
    if not mine:
        if ws.item(item_id) is None:
            raise InputError(f"item {item_id!r} is not in the workspace")
        raise InputError(f"item {item_id!r} has no keywords (run `msm4sr features` with image "
                         "keywords, or import catalog tags)")
    scored = []
    for other, words in sets.items():
        if other == item_id:
            continue
        common = mine & words
        if common:
            scored.append((-len(common) / len(mine | words), -len(common), other, sorted(common)))
    scored.sort()
    return [(o, -j, c) for j, _, o, c in scored[:k]]


def similar(ws, rec, item_id: str, k: int = 10, by: str = "model") -> list[Neighbour]:
    """The k items nearest to item_id (best first; ties by id). rec may be None for
    by="text" and by="keywords". Raises InputError for an unknown item or missing data."""
    if by not in BY:
        raise InputError(f"--by {by!r}: choose one of {', '.join(BY)}")
    if k < 1:
        raise InputError(f"-k {k}: give at least 1")
    if by == "keywords":
        found = _top_keywords(ws, item_id, k)
    else:
        if by == "model":
            if rec is None:
                raise InputError("similar items by model vectors need a model (--model)")
            ids, vecs = model_vectors(rec)
            what = f"the model {rec.folder}"
        else:
            ids, vecs = text_vectors(ws)
            what = "the text features (no text vector)"
        found = [(i, s, []) for i, s in _top_cosine(ids, vecs, item_id, k, what)]
        sets = keyword_sets(ws, [item_id] + [i for i, _, _ in found])   # what they share, shown too
        mine = sets.get(item_id, set())
        found = [(i, s, sorted(mine & sets.get(i, set()))) for i, s, _ in found]
    out = []
    for i, s, shared in found:
        it = ws.item(i)
        out.append(Neighbour(i, it.title if it else "", round(s, 6), shared))
    return out
