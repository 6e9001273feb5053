"""What the explore tools need to know about items besides the model: titles,
categories, flags, popularity, keywords and title words, read once per call."""
from __future__ import annotations

import re

import numpy as np
import torch

from core.errors import InputError
from core.workspace import Workspace

_WORD = re.compile(r"[^\W\d_][\w'-]*", re.UNICODE)


def model_items(rec) -> tuple[list[str], torch.Tensor]:
    """(ids, [N, K] scoring vectors) of every item the model can rank: catalog items, then
    new items (MSM4SR only). Row order matches the ids."""
    table = rec.table.detach()   # SASRec's table is a view of its embedding parameter
    if rec.is_content and rec.new_ids:
        return rec.item_ids + rec.new_ids, torch.cat([table, rec.new_table.detach()])
    return list(rec.item_ids), table


def row_of(ids: list[str], item_id: str, what: str = "the model") -> int:
    """Row of item_id in ids, or an InputError naming the item."""
    try:
        return ids.index(item_id)
    except ValueError:
        raise InputError(f"item {item_id!r} is not known to {what}") from None


def item_info(ws: Workspace) -> dict[str, dict]:
    """id -> {title, category, cold, new, popularity} for every workspace item."""
    pop = ws.popularity()
    return {it.id: {"title": it.title, "category": it.categories.split("|")[0] if it.categories else "",
                    "cold": bool(it.cold), "new": bool(it.is_new), "popularity": int(pop.get(it.id, 0))}
            for it in ws.items()}


def keyword_sets(ws: Workspace, ids=None) -> dict[str, set[str]]:
    """id -> the set of its keywords over every source (catalog tags, CLIP)."""
    out: dict[str, set[str]] = {}
    if ids is None:
        rows = ws.db.execute("SELECT item, word FROM keywords")
    else:
        ids = list(ids)
        rows = ws.db.execute(f"SELECT item, word FROM keywords WHERE item IN ({','.join('?' * len(ids))})",
                             ids) if ids else []
    for item, word in rows:
        out.setdefault(item, set()).add(word.lower())
    return out


def title_words(title: str) -> set[str]:
    """Lower-case words of a title without English stop words or single letters."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
    return {w for w in (m.lower() for m in _WORD.findall(title or ""))
            if len(w) > 1 and w not in ENGLISH_STOP_WORDS}


def normalise(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1)
