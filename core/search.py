"""Catalog search: an SQLite FTS5 index over item id, title, categories and text.

`items_fts` is an external-content table over `items` (keyed by items.rowid), so the
text is stored once. Triggers keep it in step with every insert, update and delete,
inside the writer's own transaction, so a rollback undoes both. Only the first
SEARCH_TEXT_CHARS characters of an item's text are indexed (descriptions can be long).

A search is every word of the user's text, each matched as a prefix of a word of the
item, in any case and ignoring accents. The user's text is never handed to FTS5 as
syntax: it is cut into words and each word is quoted, so quotes, NEAR, AND, *, ^ or
parentheses are just characters to look for.
"""
from __future__ import annotations

import re
import sqlite3

SEARCH_TEXT_CHARS = 1000
MAX_TERMS = 16              # words of a query used; the rest add nothing to a search box

# the tokenizer's words: letters and digits (unicode61 splits on everything else)
_WORD = re.compile(r"[^\W_]+")

_COLS = "id, title, categories, text"
_NEW = f"new.id, new.title, new.categories, substr(new.text, 1, {SEARCH_TEXT_CHARS})"
_OLD = f"old.id, old.title, old.categories, substr(old.text, 1, {SEARCH_TEXT_CHARS})"

SCHEMA = [
    f"CREATE VIRTUAL TABLE IF NOT EXISTS items_fts USING fts5({_COLS}, content='items', "
    "content_rowid='rowid', tokenize='unicode61 remove_diacritics 2', prefix='2 3')",
    f"CREATE TRIGGER IF NOT EXISTS items_fts_insert AFTER INSERT ON items BEGIN "
    f"INSERT INTO items_fts (rowid, {_COLS}) VALUES (new.rowid, {_NEW}); END",
    f"CREATE TRIGGER IF NOT EXISTS items_fts_delete AFTER DELETE ON items BEGIN "
    f"INSERT INTO items_fts (items_fts, rowid, {_COLS}) VALUES ('delete', old.rowid, {_OLD}); END",
    # only the indexed columns: cold flags and images change without touching the index
    f"CREATE TRIGGER IF NOT EXISTS items_fts_update AFTER UPDATE OF {_COLS} ON items BEGIN "
    f"INSERT INTO items_fts (items_fts, rowid, {_COLS}) VALUES ('delete', old.rowid, {_OLD}); "
    f"INSERT INTO items_fts (rowid, {_COLS}) VALUES (new.rowid, {_NEW}); END",
]

# ranking: a word in the title counts most, then the id, the categories, the text
_RANK = "bm25(items_fts, 4.0, 10.0, 3.0, 1.0)"


def create_index(db: sqlite3.Connection) -> None:
    """Inside the caller's transaction: the table and triggers, filled from the items
    when the table is new (a workspace made before search had an index)."""
    had = db.execute("SELECT 1 FROM sqlite_master WHERE name='items_fts'").fetchone()
    for stmt in SCHEMA:
        db.execute(stmt)
    if not had:
        rebuild(db)


def rebuild(db: sqlite3.Connection) -> None:
    """Index every item again (after a VACUUM, which may renumber implicit rowids)."""
    db.execute("INSERT INTO items_fts (items_fts) VALUES ('delete-all')")
    db.execute(f"INSERT INTO items_fts (rowid, {_COLS}) SELECT rowid, id, title, categories, "
               f"substr(text, 1, {SEARCH_TEXT_CHARS}) FROM items")


def words(text: str) -> list[str]:
    """The words a search looks for, lower-cased, at most MAX_TERMS."""
    return [w.lower() for w in _WORD.findall(text or "")][:MAX_TERMS]


def fts_query(text: str) -> str | None:
    """An FTS5 MATCH expression: every word as a quoted prefix; None when there is no word."""
    ws = words(text)
    if not ws:
        return None
    return " ".join('"' + w.replace('"', '""') + '"*' for w in ws)


def search_rowids(db: sqlite3.Connection, text: str) -> list[int]:
    """items.rowid of every match, in no particular order ([] for text without a word)."""
    q = fts_query(text)
    if q is None:
        return []
    return [r[0] for r in db.execute("SELECT rowid FROM items_fts WHERE items_fts MATCH ?", (q,))]


def search_ids(db: sqlite3.Connection, text: str, where: str = "", limit: int | None = None
               ) -> list[str]:
    """Item ids matching `text`, best first (title matches before text-only ones), ties in
    import order. `where` is an extra SQL condition on `items` (our own constants, never
    user text). Ranked on the index alone; items are read only for the ids returned."""
    q = fts_query(text)
    if q is None:
        return []
    cond = f"AND rowid IN (SELECT rowid FROM items WHERE {where})" if where else ""
    inner = (f"SELECT rowid, {_RANK} AS score FROM items_fts WHERE items_fts MATCH ? {cond} "
             f"ORDER BY score, rowid")
    params: tuple = (q,)
    if limit is not None:
        inner += " LIMIT ?"
        params += (int(limit),)
    sql = (f"SELECT items.id FROM ({inner}) AS hit JOIN items ON items.rowid = hit.rowid "
           f"ORDER BY hit.score, hit.rowid")
    return [r[0] for r in db.execute(sql, params)]
