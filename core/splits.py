"""Processing shared by every importer, and the train/valid/test splits.

Import time: de-duplication, k-core filtering, choosing cold-start items.
Train time: leave-one-out (last item test, second-to-last valid) over each
user's chronological sequence, with cold-start items removed from training.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field


def dedup(rows: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    """Drop repeated (user, item) pairs, keeping the earliest (file order on ties)."""
    order = sorted(range(len(rows)), key=lambda k: (rows[k][2], k))
    seen: set[tuple[str, str]] = set()
    keep = []
    for k in order:
        u, i, _ = rows[k]
        if (u, i) not in seen:
            seen.add((u, i))
            keep.append(k)
    keep.sort()
    return [rows[k] for k in keep]


def kcore(rows: list[tuple[str, str, int]], k: int) -> list[tuple[str, str, int]]:
    """Repeatedly drop users and items with fewer than k interactions."""
    if k <= 1:
        return rows
    while True:
        users = Counter(r[0] for r in rows)
        items = Counter(r[1] for r in rows)
        kept = [r for r in rows if users[r[0]] >= k and items[r[1]] >= k]
        if len(kept) == len(rows):
            return kept
        rows = kept


def choose_cold(item_ids: list[str], share: float, seed: int = 0) -> list[str]:
    """A reproducible random share of items to hold out of all training sequences."""
    if not 0.0 <= share < 1.0:
        raise ValueError(f"cold-start share must be in [0, 1), got {share}")
    ids = sorted(item_ids)
    n = round(len(ids) * share)
    return sorted(random.Random(seed).sample(ids, n)) if n else []


@dataclass
class Split:
    """Sequences of item ids. valid/test/cold are (history, target) pairs, one per user."""
    train: list[list[str]] = field(default_factory=list)   # training sequences (target excluded)
    valid: list[tuple[list[str], str]] = field(default_factory=list)
    test: list[tuple[list[str], str]] = field(default_factory=list)
    cold: list[tuple[list[str], str]] = field(default_factory=list)  # targets are cold items
    users: list[str] = field(default_factory=list)          # user of each valid/test row


MIN_EVAL_ITEMS = 3   # warm items a user needs to be evaluated: train on >= 1, valid, test


def leave_one_out(sequences: dict[str, list[str]], cold_items: set[str] | frozenset = frozenset(),
                  min_len: int = MIN_EVAL_ITEMS) -> Split:
    """Split each user's sequence: ..., valid target, test target.

    Cold items are removed from the warm sequence. Each user's last cold item
    becomes a cold-start case whose history is the warm items before it.
    Users with fewer than `min_len` warm items only train.
    """
    split = Split()
    for user in sorted(sequences):
        seq = sequences[user]
        warm = [i for i in seq if i not in cold_items]
        if cold_items:
            for pos in range(len(seq) - 1, 0, -1):
                if seq[pos] in cold_items:
                    hist = [i for i in seq[:pos] if i not in cold_items]
                    if hist:
                        split.cold.append((hist, seq[pos]))
                    break
        if len(warm) < min_len:
            if len(warm) >= 2:
                split.train.append(warm)
            continue
        split.train.append(warm[:-2])
        split.valid.append((warm[:-2], warm[-2]))
        split.test.append((warm[:-1], warm[-1]))
        split.users.append(user)
    return split
