"""Interactions held compactly while an import runs: 24 bytes a row instead of ~250.

Parsers append (user, item, timestamp) tuples as they read; each user and item string is
kept once (codes in first-seen order), the rows as three int arrays. 10M interactions
take about 250 MB here, where a list of tuples of strings takes several GB. De-duplication
and the k-core filter run on the arrays with numpy and give exactly what
core.splits.dedup and core.splits.kcore give on the tuples.
"""
from __future__ import annotations

from array import array
from itertools import filterfalse

import numpy as np


class Rows:
    """Append (user, item, timestamp) tuples; call flush() now and then while reading (the
    parsers do at their progress points) so the pending tuples are packed into the columns."""

    def __init__(self, rows=()):
        self.users: dict[str, int] = {}
        self.items: dict[str, int] = {}
        self._u, self._i, self._t = array("i"), array("i"), array("q")
        self._arrays = None   # (u, i, t) numpy arrays once reading is over
        self._pending: list = []
        self.append = self._pending.append   # list.append itself: no Python call per row
        for r in rows:
            self.append(r)
        self.flush()

    def flush(self) -> None:
        """Pack the pending tuples: codes in first-seen order (setdefault with the next code)."""
        p = self._pending
        if not p:
            return
        if self._arrays is not None:
            raise RuntimeError("rows were appended after reading finished")
        us, its, ts = zip(*p)
        self._u.extend(_codes(self.users, us))
        self._i.extend(_codes(self.items, its))
        self._t.extend(ts)
        p.clear()

    def __len__(self) -> int:
        return len(self._u) + len(self._pending) if self._arrays is None else len(self._arrays[0])

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._arrays is None:
            self.flush()
            self._arrays = (np.frombuffer(self._u, dtype=np.int32), np.frombuffer(self._i, dtype=np.int32),
                            np.frombuffer(self._t, dtype=np.int64))
        return self._arrays

    def take(self, keep: np.ndarray) -> "Rows":
        """The rows at positions `keep` (ascending), sharing this object's string tables."""
        out = Rows.__new__(Rows)
        out._pending = []
        out.append = out._pending.append
        out.users, out.items = self.users, self.items
        u, i, t = self.arrays()
        out._arrays = (u[keep], i[keep], t[keep])
        return out

    def __iter__(self):
        """(user, item, timestamp) tuples in file order, made as they are read."""
        for chunk in self.chunks():
            yield from chunk

    def chunks(self, size: int = 65536):
        """The rows as lists of (user, item, timestamp) tuples, `size` at a time."""
        uid, iid = list(self.users), list(self.items)
        u, i, t = self.arrays()
        for lo in range(0, len(u), size):
            yield list(zip(map(uid.__getitem__, u[lo:lo + size].tolist()),
                           map(iid.__getitem__, i[lo:lo + size].tolist()), t[lo:lo + size].tolist()))

    def has_repeats(self) -> bool:
        u, i, _ = self.arrays()
        p = np.sort(_pair(u, i, len(self.items)))
        return bool((p[1:] == p[:-1]).any())

    def dedup(self) -> "Rows":
        """Drop repeated (user, item) pairs, keeping the earliest (file order on ties)."""
        return self.take(self._dedup_positions(np.arange(len(self))))

    def kcore(self, k: int, progress=None) -> "Rows":
        """Repeatedly drop users and items with fewer than k interactions."""
        if k <= 1:
            return self
        return self.take(self._kcore_positions(np.arange(len(self)), k, progress))

    def _dedup_positions(self, keep: np.ndarray) -> np.ndarray:
        u, i, t = (a[keep] for a in self.arrays())
        order = np.lexsort((np.arange(len(u)), t))          # by time, then file position
        first = _firsts(_pair(u, i, len(self.items))[order])[1]
        return keep[np.sort(order[first])]

    def _kcore_positions(self, keep: np.ndarray, k: int, progress=None) -> np.ndarray:
        u, i, _ = self.arrays()
        rounds = 0
        while True:
            uu, ii = u[keep], i[keep]
            ok = (np.bincount(uu, minlength=len(self.users))[uu] >= k) & \
                 (np.bincount(ii, minlength=len(self.items))[ii] >= k)
            rounds += 1
            if progress is not None:
                progress(rounds, int(ok.sum()))
            if ok.all():
                return keep
            keep = keep[ok]

    def merged(self, new: "Rows", dedup: bool, k: int) -> tuple[np.ndarray, np.ndarray]:
        """This object holds the stored rows; merge `new` after them, drop exact repeats, then
        de-duplicate and k-core the whole. Returns (the stored positions that go, the new
        positions whose (user, item, timestamp) is in the result) -- so a re-import of stored
        rows keeps them, and its items, exactly as a first import of the merged data would."""
        both = Rows()
        for part in (self, new):
            for chunk in part.chunks():
                both._pending.extend(chunk)
                both.flush()
        n = len(self)
        u, i, t = both.arrays()
        pair = _pair(u, i, len(both.items))
        triple = np.unique(np.stack([pair, t], axis=1), axis=0, return_inverse=True)[1].reshape(-1)
        keep = np.sort(_firsts(triple)[1])                 # an exact repeat is stored once
        if dedup:
            keep = both._dedup_positions(keep)
        if k > 1:
            keep = both._kcore_positions(keep, k)
        kept = np.zeros(len(u), dtype=bool)
        kept[keep] = True
        stays = np.zeros(int(triple.max()) + 1 if len(triple) else 0, dtype=bool)
        stays[triple[keep]] = True
        return np.flatnonzero(~kept[:n]), np.flatnonzero(stays[triple[n:]])

    def is_kcore(self, k: int) -> bool:
        if k <= 1 or not len(self):
            return True
        u, i, _ = self.arrays()
        cu, ci = np.bincount(u), np.bincount(i)
        return bool(cu[cu > 0].min() >= k and ci[ci > 0].min() >= k)

    def item_ids(self) -> list[str]:
        """Ids of the items that have rows, in first-seen order."""
        _, i, _ = self.arrays()
        codes, first = _firsts(i)
        iid = list(self.items)
        return [iid[c] for c in codes[np.argsort(first, kind="stable")].tolist()]

    def n_users(self) -> int:
        return int(np.count_nonzero(np.bincount(self.arrays()[0]))) if len(self) else 0


def _codes(table: dict, keys) -> map:
    """Codes of `keys`; keys not yet in `table` get the next codes, in first-seen order.
    Only new keys cost a Python step: the lookups run in C."""
    for k in filterfalse(table.__contains__, dict.fromkeys(keys)):
        table[k] = len(table)
    return map(table.__getitem__, keys)


def _pair(u: np.ndarray, i: np.ndarray, n_items: int) -> np.ndarray:
    return u.astype(np.int64) * max(n_items, 1) + i


def _firsts(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct keys ascending, position of each one's first occurrence)."""
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    start = np.ones(len(k), dtype=bool)
    start[1:] = k[1:] != k[:-1]
    return k[start], order[start]
