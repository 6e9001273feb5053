"""Catalog search on SQLite FTS5 and the grid at a large catalog, on real workspaces.

Search results are compared with a brute-force reference written here in Python: an item
matches when every word of the query starts a word of its id, title, categories or the
first 1000 characters of its text (any case, accents ignored). The grid is checked by
counting what it reads, never by timing it (bench/bench_catalog_scale.py times it).
"""
from __future__ import annotations

import random
import re
import shutil
import sqlite3
import threading
import unicodedata

import pytest

from core import search as fts
from core.workspace import DB_NAME, SCHEMA_VERSION, Item, Workspace

HOSTILE = ['"', '""', "'", 'toy"', '"toy', 'NEAR(toy story)', "NEAR", "toy NEAR story", "AND",
           "OR", "NOT", "toy OR", "NOT toy", "*", "**", "to*", "*oy", "^toy", "(", ")", "(toy",
           "toy)", "{id title}: toy", "title:toy", "id:1", "-toy", "+", "toy -story", "%", "_",
           "\\", "\x00", "toy\x00story", "élan", "CAFÉ", "straße", "日本語", "🙂 toy", "ℌ",
           "a" * 5000, " ".join(["toy"] * 200), "\u0301", "e\u0301", "İstanbul", "\ud7ff", "\t\n"]


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text.casefold())
                   if not unicodedata.combining(c))


def _tokens(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", _fold(text))


def reference(ws: Workspace, query: str, where: str = "") -> set[str]:
    """Every item whose words start with each query word: a scan of all rows."""
    want = [_fold(w) for w in fts.words(query)]
    if not want:
        return set()
    out = set()
    sql = "SELECT id, title, categories, text FROM items" + (f" WHERE {where}" if where else "")
    for iid, title, cats, text in ws.db.execute(sql):
        toks = _tokens(f"{iid} {title} {cats} {text[:fts.SEARCH_TEXT_CHARS]}")
        if all(any(t.startswith(w) for t in toks) for w in want):
            out.add(iid)
    return out


def queries_from(ws: Workspace, n: int, seed: int = 0) -> list[str]:
    """Real queries: whole words, prefixes of 2-4 letters, and pairs, from the catalog itself."""
    rng = random.Random(seed)
    rows = ws.db.execute("SELECT title, categories, text FROM items ORDER BY id").fetchall()
    out = []
    while len(out) < n:
        toks = _tokens(" ".join(rng.choice(rows)))
        if not toks:
            continue
        a, b = rng.choice(toks), rng.choice(toks)
        out += [a, a[:rng.randint(2, 4)], f"{a.upper()} {b[:3]}"]
    return out[:n]


@pytest.fixture(scope="module")
def demo_ws(built_demo, tmp_path_factory):
    path = tmp_path_factory.mktemp("demo") / "ws"
    shutil.copytree(built_demo[0], path)
    ws = Workspace.open(path)
    yield ws
    ws.close()


def test_fts_results_equal_a_full_scan_on_the_demo(demo_ws):
    ws = demo_ws
    assert ws.db.execute("SELECT COUNT(*) FROM items").fetchone()[0] > 100
    nonempty = 0
    for q in queries_from(ws, 90):
        got = ws.search(q)
        assert len(got) == len(set(got)) and set(got) == reference(ws, q), q
        nonempty += bool(got)
        new_only = ws.search(q, "is_new=0")
        assert set(new_only) == reference(ws, q, "is_new=0")
    assert nonempty >= 80


@pytest.mark.realdata
def test_fts_results_equal_a_full_scan_on_movielens_titles(ml1m, tmp_path):
    from gui_support import ml1m_workspace
    path = ml1m_workspace(ml1m, tmp_path / "ws", n_items=1500, max_rows=2000, tags=False)
    with Workspace.open(path) as ws:
        accented = [t for (t,) in ws.db.execute("SELECT title FROM items") if _fold(t) != t.lower()]
        assert accented, "the slice should hold titles with accents"
        for q in queries_from(ws, 120, seed=1) + ["misera", "MISÉRABLES", "cafe", "l'", "schindler's"]:
            assert set(ws.search(q)) == reference(ws, q), q


def test_triggers_keep_the_index_in_step_and_roll_back_with_the_items(workspace):
    ws = workspace
    with ws.transaction() as db:
        changed = ws.upsert_items([Item("b1", "Borosilicate beaker", categories="Lab|Glass",
                                        text="for acids"),
                                   Item("f1", "Flat flask", categories="Lab", text="glass, 250 ml"),
                                   Item("t1", "Tongs", categories="Tools")], db)
    assert changed == 3             # items changed; the index's own rows are not counted
    with ws.transaction() as db:
        ws.upsert_items([Item("g1", "Glass rod", text="a rod")], db)
    # best first: the word in the title, then in the categories, then in the text only
    assert ws.search("glass") == ["g1", "b1", "f1"]
    ws.delete_item("g1")
    assert ws.search("bor bea") == ["b1"] and ws.search("250") == ["f1"] and ws.search("t1") == ["t1"]
    # update: old words leave the index, new ones come in
    with ws.transaction() as db:
        changed = ws.upsert_items([Item("t1", "Crucible tongs", categories="Tools|Glass"),
                                   Item("b1", "Borosilicate beaker", categories="Lab|Glass",
                                        text="for acids")], db)      # b1 unchanged
    assert changed == 1
    assert set(ws.search("glass")) == {"b1", "f1", "t1"} and ws.search("crucib") == ["t1"]
    with ws.transaction() as db:
        ws.upsert_items([Item("f1", "Flat flask", categories="Lab", text="plastic")], db)
    assert ws.search("250") == [] and set(ws.search("glass")) == {"b1", "t1"}
    # flags change without touching the words
    with ws.transaction() as db:
        ws.set_cold(["b1"], db)
    assert ws.search("glass", "cold=1") == ["b1"]
    new = ws.add_new_item("Hand-made flask", text="blown glass")
    assert ws.search("hand made") == [new.id] and ws.search("flask", "is_new=1") == [new.id]
    ws.delete_item(new.id)
    assert ws.search("hand") == [] and ws.search("flask") == ["f1"]
    # a failed write leaves items and index as they were
    with pytest.raises(RuntimeError):
        with ws.transaction() as db:
            ws.upsert_items([Item("z1", "Zirconia crucible")], db)
            db.execute("DELETE FROM items WHERE id='b1'")
            db.execute("UPDATE items SET title='Renamed' WHERE id='t1'")
            assert ws.search("zircon") == ["z1"] and ws.search("boro") == []
            raise RuntimeError("killed mid-import")
    assert ws.search("zircon") == [] and ws.search("boro") == ["b1"] and ws.search("renamed") == []
    assert ws.search("crucib") == ["t1"]
    for q in ("glass", "flask", "lab", "tools", "c", "b1"):
        assert set(ws.search(q)) == reference(ws, q), q
    fts_rows = ws.db.execute("SELECT COUNT(*) FROM items_fts").fetchone()[0]
    assert fts_rows == ws.db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    assert ws.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_an_older_workspace_gets_its_index_on_open(tmp_path):
    path = tmp_path / "ws"
    with Workspace.create(path) as ws:
        with ws.transaction() as db:
            ws.upsert_items([Item(f"i{k}", f"Item {k} {'glass' if k % 2 else 'steel'}") for k in range(50)], db)
    # as schema version 1 left it: no index, no triggers; then items written by that version
    db = sqlite3.connect(path / DB_NAME)
    for t in ("insert", "delete", "update"):
        db.execute(f"DROP TRIGGER items_fts_{t}")
    db.execute("DROP TABLE items_fts")
    db.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    db.execute("INSERT INTO items (id, title, added) VALUES ('late', 'Late glass item', 0)")
    db.commit()
    db.close()
    with Workspace.open(path) as ws:
        assert ws.get_meta("schema_version") == SCHEMA_VERSION == 2
        assert set(ws.search("glass")) == {f"i{k}" for k in range(1, 50, 2)} | {"late"}
        with ws.transaction() as db:            # and the triggers work from then on
            ws.upsert_items([Item("i0", "Item 0 glass")], db)
        assert "i0" in ws.search("glass")
    with Workspace.open(path) as ws:            # a second open leaves it alone
        assert len(ws.search("glass")) == 27


def test_hostile_search_strings_never_raise(demo_ws):
    from gui.catalog_data import NEW_TAG, filter_rows, load_catalog
    ws = demo_ws
    d = load_catalog(ws.db, "id")
    order = d.orders["id"]
    for q in HOSTILE:
        got = ws.search(q)
        assert set(got) == reference(ws, q), repr(q)
        rows = filter_rows(ws.db, order, d.max_rowid, q)
        if q.strip():
            assert len(rows) == len(got), repr(q)
        for cat in ('"', "'); DROP TABLE items; --", NEW_TAG, "%", "日本語"):
            filter_rows(ws.db, order, d.max_rowid, q, cat)
        assert fts.fts_query(q) is None or fts.fts_query(q).count('"') % 2 == 0
    # an operator is looked for as a word: "near" finds items with words starting "near"
    assert set(ws.search("NEAR")) == reference(ws, "near")
    assert ws.search("!!! ((( ***") == [] and ws.db.execute("SELECT COUNT(*) FROM items").fetchone()[0]


# ---- the grid at a large catalog ------------------------------------------------
@pytest.fixture(scope="module")
def big_ws(tmp_path_factory):
    from gui_support import synthetic_workspace
    return synthetic_workspace(tmp_path_factory.mktemp("big") / "ws", 200_000)


def test_grid_at_200k_items_reads_only_visible_rows_on_the_gui_thread(qtbot, big_ws, monkeypatch):
    import math
    from collections import Counter
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication
    import gui.catalog as catalog
    import gui.catalog_data as cd
    from gui.state import Session
    gui_thread = threading.get_ident()
    asked, reads, where = set(), Counter(), Counter()
    real_data, real_page = catalog.CatalogModel.data, cd.read_page

    def counting_data(self, index, role=Qt.DisplayRole):
        asked.add(index.row())
        return real_data(self, index, role)

    def counting_page(db, root, rowids):
        reads["gui" if threading.get_ident() == gui_thread else "worker"] += len(rowids)
        return real_page(db, root, rowids)

    def tracked(name, fn):
        def run(*a, **k):
            where[(name, threading.get_ident() == gui_thread)] += 1
            return fn(*a, **k)
        return run
    monkeypatch.setattr(catalog.CatalogModel, "data", counting_data)
    monkeypatch.setattr(cd, "read_page", counting_page)
    for name in ("sort_order", "filter_rows", "load_categories", "load_popularity"):
        monkeypatch.setattr(cd, name, tracked(name, getattr(cd, name)))
    monkeypatch.setattr(Workspace, "items", tracked("Workspace.items", Workspace.items))
    monkeypatch.setattr(Workspace, "item_ids", tracked("Workspace.item_ids", Workspace.item_ids))

    session = Session()
    panel = catalog.CatalogPanel(session)
    qtbot.addWidget(panel)
    panel.resize(900, 700)
    panel.show()
    session.open_workspace(big_ws)
    qtbot.waitUntil(lambda: panel.loaded, timeout=60000)
    m, view = panel.model, panel.view
    QApplication.processEvents()
    vp, grid = view.viewport(), view.gridSize()
    cells = math.ceil(vp.width() / grid.width()) * (math.ceil(vp.height() / grid.height()) + 1)
    assert m.rowCount() == m.total() == 200_000 and panel.count.text() == "200,000 items"
    # the cells on screen, and the last row (QListView asks for it when it lays out the grid)
    last = m.rowCount() - 1
    assert 0 < len(asked - {last}) <= cells and max(asked - {last}) < cells and len(asked) <= cells + 1
    assert reads["gui"] <= 2 * cd.PAGE and reads["worker"] == 0   # the first page and the last
    assert all(not on_gui for (name, on_gui) in where), where     # orders, categories: on workers
    assert not any(name.startswith("Workspace.") for name, _ in where)

    # search, category and sort: computed on a worker; the grid shows the result when it comes
    where.clear()
    panel.search.setText("product 19999")
    panel.apply_search()
    assert panel.busy and panel.count.text() == "searching…"
    qtbot.waitUntil(lambda: not panel.busy, timeout=30000)
    got = panel.visible_ids()
    want = sorted({f"i{k:06d}" for k in range(200_000) if str(k).startswith("19999")},
                  key=lambda i: (session.ws.item(i).title.lower(), i))
    assert got == want and len(got) == 11                       # 19999 and 199990..199999
    panel.set_category("Garden")
    qtbot.waitUntil(lambda: not panel.busy, timeout=30000)
    assert panel.visible_ids() == [i for i in want if session.ws.item(i).categories.startswith("Garden")]
    panel.search.clear()
    panel.apply_search()
    qtbot.waitUntil(lambda: not panel.busy, timeout=30000)
    assert m.rowCount() == 25_000
    panel.set_category("")
    panel.set_sort("popularity")
    qtbot.waitUntil(lambda: not panel.busy, timeout=30000)
    assert m.rowCount() == 200_000
    pops = [m.popularity(r) for r in range(50)]
    assert pops == sorted(pops, reverse=True) and pops[0] == 1 and m.popularity(199_999) == 0
    assert where[("filter_rows", False)] >= 4 and not any(on_gui for (_, on_gui) in where), where

    # scrolling to the end reads the pages on screen, never the catalog
    asked.clear()
    reads.clear()
    bar = view.verticalScrollBar()
    end = m.index(m.rowCount() - 1)
    qtbot.waitUntil(lambda: not view.visualRect(end).isEmpty(), timeout=60000)   # batched layout done
    for k in range(11):
        bar.setValue(bar.maximum() * k // 10)
        QApplication.processEvents()
        vp.repaint()
    assert len(asked) <= 11 * cells + 1 and reads["gui"] <= 11 * 2 * cd.PAGE
    assert max(asked) >= 200_000 - cells            # the last screen was painted
    # selecting an item elsewhere finds its row through the rowid index, not a scan of rows
    session.select("i123456")
    assert m.item_id(view.currentIndex().row()) == "i123456"
    session.ws.close()
