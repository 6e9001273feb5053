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
