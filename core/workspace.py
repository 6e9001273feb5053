"""A workspace is a folder: catalog.sqlite, features/, models/, runs/.

The database holds items, interactions, user-added items, saved sequences and
image keywords. Every write goes through `transaction()`, so a failed import or
a killed process leaves the database as it was.
"""
from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, asdict
from pathlib import Path
from typing import Iterable, Iterator

from core import search
from core.errors import WorkspaceError

SCHEMA_VERSION = 2          # 2: the items_fts search index (core/search.py)
DB_NAME = "catalog.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    id         TEXT PRIMARY KEY,
    title      TEXT NOT NULL DEFAULT '',
    brand      TEXT NOT NULL DEFAULT '',
    categories TEXT NOT NULL DEFAULT '',   -- '|'-separated
    text       TEXT NOT NULL DEFAULT '',   -- description
    image      TEXT,                       -- absolute path, or relative to the workspace
    is_new     INTEGER NOT NULL DEFAULT 0, -- added by the user, never seen in training data
    cold       INTEGER NOT NULL DEFAULT 0, -- held out of training by the cold-start split
    added      REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS interactions (
    user TEXT NOT NULL,
    item TEXT NOT NULL,
    ts   INTEGER NOT NULL,
    pos  INTEGER NOT NULL,                 -- file order, breaks timestamp ties
    PRIMARY KEY (user, item, ts)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS interactions_by_user ON interactions (user, ts, pos);
CREATE TABLE IF NOT EXISTS keywords (
    item   TEXT NOT NULL,
    source TEXT NOT NULL,                  -- 'clip:MODEL:TAG', 'clip:MODEL:file=HASH' or 'catalog-tags'
    rank   INTEGER NOT NULL,
    word   TEXT NOT NULL,
    score  REAL NOT NULL,
    PRIMARY KEY (item, source, rank)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS problems (
    item    TEXT NOT NULL,
    stage   TEXT NOT NULL,                 -- 'image', 'text', ...
    problem TEXT NOT NULL,
    PRIMARY KEY (item, stage)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sequences (
    name    TEXT PRIMARY KEY,
    items   TEXT NOT NULL,                 -- JSON list of item ids
    updated REAL NOT NULL
);
"""

ITEM_FIELDS = ("id", "title", "brand", "categories", "text", "image", "is_new", "cold")


@dataclass
class Item:
    id: str
    title: str = ""
    brand: str = ""
    categories: str = ""
    text: str = ""
    image: str | None = None
    is_new: bool = False
    cold: bool = False

    def sentence(self) -> str:
        """The title/brand/category sentence that leads an item's text vectors."""
        cats = ", ".join(c for c in self.categories.split("|") if c)
        return ". ".join(p for p in (self.title, self.brand, cats) if p)


@dataclass
class Keyword:
    word: str
    score: float


class Workspace:
    """Open with `Workspace.open(path)`; use as a context manager to close."""

    def __init__(self, path: Path, db: sqlite3.Connection):
        self.path = path
        self.db = db

    # ---- life cycle -------------------------------------------------------
    @classmethod
    def create(cls, path) -> "Workspace":
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        return cls.open(path, create=True)

    @classmethod
    def open(cls, path, create: bool = False) -> "Workspace":
        path = Path(path)
        db_path = path / DB_NAME
        if not db_path.exists() and not create:
            raise WorkspaceError(f"{path}: not a workspace (no {DB_NAME}); import a catalog first")
        path.mkdir(parents=True, exist_ok=True)
        for sub in ("features", "models", "runs"):
            (path / sub).mkdir(exist_ok=True)
        try:
            db = sqlite3.connect(db_path, isolation_level=None, timeout=30, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as e:
            raise WorkspaceError(f"{db_path}: cannot open database: {e}") from e
        ws = cls(path, db)
        ws._migrate()
        return ws

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _migrate(self) -> None:
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.OperationalError:
            row = None
        except sqlite3.DatabaseError as e:
            raise WorkspaceError(f"{self.path / DB_NAME}: not a valid database: {e}") from e
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise WorkspaceError(
                f"{self.path}: schema version {version} is newer than this program's "
                f"{SCHEMA_VERSION}; update MSM4SR Studio")
        if version < SCHEMA_VERSION:
            with self.transaction() as db:
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        db.execute(stmt)
                search.create_index(db)     # fills the index of an older workspace's items
                db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                           (str(SCHEMA_VERSION),))

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: everything inside commits together or not at all."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")

    # ---- paths -----------------------------------------------------------
    @property
    def features_dir(self) -> Path:
        return self.path / "features"

    @property
    def models_dir(self) -> Path:
        return self.path / "models"

    @property
    def runs_dir(self) -> Path:
        return self.path / "runs"

    def image_path(self, item: Item) -> Path | None:
        if not item.image:
            return None
        p = Path(item.image)
        return p if p.is_absolute() else self.path / p

    # ---- meta ------------------------------------------------------------
    def get_meta(self, key: str, default=None):
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value, db: sqlite3.Connection | None = None) -> None:
        (db or self.db).execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    # ---- items -----------------------------------------------------------
    def upsert_items(self, items: Iterable[Item], db: sqlite3.Connection) -> int:
        """Insert or update items inside the caller's transaction. Returns rows changed."""
        now = time.time()
        # Staged in a temporary table, then one statement into items: FTS5 flushes its pending
        # index at every statement, so a statement per row (executemany) cost 8x at 100k items.
        db.execute("CREATE TEMP TABLE IF NOT EXISTS upsert_stage (id, title, brand, categories, "
                   "text, image, is_new, cold, added)")
        db.execute("DELETE FROM temp.upsert_stage")
        db.executemany(
            "INSERT INTO temp.upsert_stage VALUES (?,?,?,?,?,?,?,?,?)",
            ((i.id, i.title, i.brand, i.categories, i.text, i.image, int(i.is_new), int(i.cold), now)
             for i in items))
        # rowcount, not total_changes: the search index's trigger rows are not items
        changed = db.execute(
            "INSERT INTO items (id, title, brand, categories, text, image, is_new, cold, added) "
            "SELECT * FROM temp.upsert_stage WHERE true ORDER BY rowid "
            "ON CONFLICT(id) DO UPDATE SET "
            "title=excluded.title, brand=excluded.brand, categories=excluded.categories, "
            "text=excluded.text, image=excluded.image, is_new=excluded.is_new, cold=excluded.cold "
            "WHERE title IS NOT excluded.title OR brand IS NOT excluded.brand "
            "OR categories IS NOT excluded.categories OR text IS NOT excluded.text "
            "OR image IS NOT excluded.image OR is_new IS NOT excluded.is_new "
            "OR cold IS NOT excluded.cold").rowcount
        db.execute("DELETE FROM temp.upsert_stage")
        return changed

    def items(self, where: str = "", params: tuple = ()) -> list[Item]:
        sql = f"SELECT {', '.join(ITEM_FIELDS)} FROM items {where} ORDER BY id"
        return [_item(r) for r in self.db.execute(sql, params)]

    def item(self, item_id: str) -> Item | None:
        r = self.db.execute(f"SELECT {', '.join(ITEM_FIELDS)} FROM items WHERE id=?",
                            (item_id,)).fetchone()
        return _item(r) if r else None

    def item_ids(self) -> list[str]:
        """All item ids in a fixed order (sorted); model indices follow this order."""
        return [r[0] for r in self.db.execute("SELECT id FROM items ORDER BY id")]

    def search(self, text: str, where: str = "", limit: int | None = None) -> list[str]:
        """Ids of the items holding every word of `text` as a word prefix, best first
        (core/search.py). `where`: an extra condition on items, e.g. "is_new=1"."""
        return search.search_ids(self.db, text, where, limit)

    def add_new_item(self, title: str, text: str = "", image: str | None = None,
                     categories: str = "") -> Item:
        """A user-created cold-start item. Its id is 'new:N'."""
        with self.transaction() as db:
            n = db.execute("SELECT COUNT(*) FROM items WHERE is_new=1").fetchone()[0]
            while db.execute("SELECT 1 FROM items WHERE id=?", (f"new:{n + 1}",)).fetchone():
                n += 1
            item = Item(id=f"new:{n + 1}", title=title, text=text, image=image,
                        categories=categories, is_new=True)
            self.upsert_items([item], db)
        return item

    def delete_item(self, item_id: str) -> None:
        with self.transaction() as db:
            for table, col in (("keywords", "item"), ("problems", "item"), ("items", "id")):
                db.execute(f"DELETE FROM {table} WHERE {col}=?", (item_id,))

    def set_cold(self, item_ids: Iterable[str], db: sqlite3.Connection) -> None:
        db.execute("UPDATE items SET cold=0 WHERE cold=1")
        db.executemany("UPDATE items SET cold=1 WHERE id=?", ((i,) for i in item_ids))

    # ---- interactions ----------------------------------------------------
    def add_interactions(self, rows: Iterable[tuple[str, str, int]], db: sqlite3.Connection) -> int:
        """Append (user, item, ts) rows in file order. Exact repeats are ignored."""
        start = db.execute("SELECT COALESCE(MAX(pos), -1) + 1 FROM interactions").fetchone()[0]
        before = db.total_changes
        db.executemany("INSERT OR IGNORE INTO interactions VALUES (?,?,?,?)",
                       ((u, i, int(t), start + k) for k, (u, i, t) in enumerate(rows)))
        return db.total_changes - before

    def sequences(self) -> dict[str, list[str]]:
        """Each user's items, oldest first; timestamp ties keep file order."""
        out: dict[str, list[str]] = {}
        for user, item in self.db.execute(
                "SELECT user, item FROM interactions ORDER BY user, ts, pos"):
            out.setdefault(user, []).append(item)
        return out

    def popularity(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT item, COUNT(*) FROM interactions GROUP BY item"))

    # ---- keywords and problems ------------------------------------------
    def set_keywords(self, rows: Iterable[tuple[str, str, list[tuple[str, float]]]],
                     db: sqlite3.Connection) -> None:
        """rows: (item, source, [(word, score), ...]) replacing earlier ones of that source."""
        for item, source, words in rows:
            db.execute("DELETE FROM keywords WHERE item=? AND source=?", (item, source))
            db.executemany("INSERT INTO keywords VALUES (?,?,?,?,?)",
                           ((item, source, r, w, float(s)) for r, (w, s) in enumerate(words)))

    def keywords(self, item_id: str, source: str | None = None) -> dict[str, list[Keyword]]:
        """source -> keywords, best first."""
        sql = "SELECT source, word, score FROM keywords WHERE item=?"
        params: tuple = (item_id,)
        if source is not None:
            sql += " AND source=?"
            params += (source,)
        out: dict[str, list[Keyword]] = {}
        for src, w, s in self.db.execute(sql + " ORDER BY source, rank", params):
            out.setdefault(src, []).append(Keyword(w, s))
        return out

    def keyword_sources(self) -> dict[str, int]:
        return dict(self.db.execute(
            "SELECT source, COUNT(DISTINCT item) FROM keywords GROUP BY source"))

    def set_problem(self, item_id: str, stage: str, problem: str | None, db: sqlite3.Connection) -> None:
        if problem is None:
            db.execute("DELETE FROM problems WHERE item=? AND stage=?", (item_id, stage))
        else:
            db.execute("INSERT OR REPLACE INTO problems VALUES (?,?,?)", (item_id, stage, problem))

    def problems(self, stage: str | None = None) -> list[tuple[str, str, str]]:
        if stage is None:
            return list(self.db.execute("SELECT item, stage, problem FROM problems ORDER BY item"))
        return list(self.db.execute(
            "SELECT item, stage, problem FROM problems WHERE stage=? ORDER BY item", (stage,)))

    # ---- saved sequences -------------------------------------------------
    def save_sequence(self, name: str, item_ids: list[str]) -> None:
        if not name.strip():
            raise ValueError("a saved sequence needs a name")
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO sequences VALUES (?,?,?)",
                       (name, json.dumps(list(item_ids)), time.time()))

    def load_sequence(self, name: str) -> list[str]:
        row = self.db.execute("SELECT items FROM sequences WHERE name=?", (name,)).fetchone()
        if row is None:
            raise KeyError(f"no saved sequence named {name!r}")
        return json.loads(row[0])

    def sequence_names(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT name FROM sequences ORDER BY name")]

    def delete_sequence(self, name: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM sequences WHERE name=?", (name,))

    # ---- summary ---------------------------------------------------------
    def counts(self) -> dict:
        q = lambda sql: self.db.execute(sql).fetchone()[0]  # noqa: E731
        t0, t1 = self.db.execute("SELECT MIN(ts), MAX(ts) FROM interactions").fetchone()
        return {
            "items": q("SELECT COUNT(*) FROM items"),
            "interacted_items": q("SELECT COUNT(DISTINCT item) FROM interactions"),
            "new_items": q("SELECT COUNT(*) FROM items WHERE is_new=1"),
            "cold_items": q("SELECT COUNT(*) FROM items WHERE cold=1"),
            "items_with_image": q("SELECT COUNT(*) FROM items WHERE image IS NOT NULL AND image != ''"),
            "users": q("SELECT COUNT(DISTINCT user) FROM interactions"),
            "interactions": q("SELECT COUNT(*) FROM interactions"),
            "time_range": [t0, t1],
            "saved_sequences": q("SELECT COUNT(*) FROM sequences"),
            "keyword_sources": self.keyword_sources(),
        }


def _item(r) -> Item:
    return Item(id=r[0], title=r[1], brand=r[2], categories=r[3], text=r[4], image=r[5],
                is_new=bool(r[6]), cold=bool(r[7]))
