import sqlite3

import pytest

from core.errors import WorkspaceError
from core.workspace import Item, Workspace


def test_items_and_interactions_roundtrip(workspace):
    with workspace.transaction() as db:
        workspace.upsert_items([Item("a", title="A"), Item("b", title="B", image="x.png")], db)
        workspace.add_interactions([("u1", "b", 5), ("u1", "a", 5), ("u2", "a", 1)], db)
    assert workspace.item_ids() == ["a", "b"]
    # timestamp ties keep file order
    assert workspace.sequences() == {"u1": ["b", "a"], "u2": ["a"]}
    assert workspace.counts()["interactions"] == 3


def test_second_identical_import_changes_nothing(workspace):
    rows = [("u1", "a", 1), ("u1", "b", 2)]
    for expect in (2, 0):
        with workspace.transaction() as db:
            workspace.upsert_items([Item("a"), Item("b")], db)
            assert workspace.add_interactions(rows, db) == expect
    assert workspace.counts()["interactions"] == 2


def test_failed_transaction_leaves_database_as_it_was(workspace):
    with workspace.transaction() as db:
        workspace.upsert_items([Item("a")], db)
    with pytest.raises(RuntimeError):
        with workspace.transaction() as db:
            workspace.upsert_items([Item("b")], db)
            workspace.add_interactions([("u", "b", 1)], db)
            raise RuntimeError("boom")
    assert workspace.item_ids() == ["a"]
    assert workspace.counts()["interactions"] == 0


def test_new_items_keywords_and_saved_sequences(workspace):
    item = workspace.add_new_item("My lamp", "a desk lamp", image="/tmp/lamp.png")
    assert item.id == "new:1" and workspace.item(item.id).is_new
    with workspace.transaction() as db:
        workspace.set_keywords([(item.id, "catalog-tags", [("lamp", 0.9), ("desk", 0.5)])], db)
    kw = workspace.keywords(item.id)["catalog-tags"]
    assert [k.word for k in kw] == ["lamp", "desk"]
    workspace.save_sequence("mine", ["new:1"])
    assert workspace.load_sequence("mine") == ["new:1"]
    assert workspace.sequence_names() == ["mine"]


def test_open_refuses_non_workspace_and_garbage(tmp_path):
    with pytest.raises(WorkspaceError, match="not a workspace"):
        Workspace.open(tmp_path / "nothing")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "catalog.sqlite").write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(WorkspaceError):
        Workspace.open(bad)


def test_integrity_after_writes(workspace):
    with workspace.transaction() as db:
        workspace.upsert_items([Item(str(i)) for i in range(100)], db)
    assert workspace.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_newer_schema_is_refused_and_an_older_one_upgraded(tmp_path):
    from core.workspace import DB_NAME, SCHEMA_VERSION
    path = tmp_path / "ws"
    with Workspace.create(path) as ws:
        with ws.transaction() as db:
            ws.upsert_items([Item("a", title="A")], db)

    def version():
        db = sqlite3.connect(path / DB_NAME)
        try:
            row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            return int(row[0]) if row else None
        finally:
            db.close()

    def sql(*statements):
        db = sqlite3.connect(path / DB_NAME)
        for s in statements:
            db.execute(s)
        db.commit()
        db.close()

    assert version() == SCHEMA_VERSION
    # written by a newer program: refused with a message that says what to do, left untouched
    sql(f"UPDATE meta SET value='{SCHEMA_VERSION + 1}' WHERE key='schema_version'")
    with pytest.raises(WorkspaceError, match=rf"schema version {SCHEMA_VERSION + 1} is newer than "
                                             rf"this program's {SCHEMA_VERSION}; update MSM4SR Studio"):
        Workspace.open(path)
    assert version() == SCHEMA_VERSION + 1
    # written before the version was recorded, and before saved sequences existed: upgraded
    sql("DELETE FROM meta WHERE key='schema_version'", "DROP TABLE sequences")
    with Workspace.open(path) as ws:
        assert ws.item("a").title == "A"               # the data survives the upgrade
        ws.save_sequence("mine", ["a"])                # and the missing table is there
        assert ws.load_sequence("mine") == ["a"]
    assert version() == SCHEMA_VERSION
