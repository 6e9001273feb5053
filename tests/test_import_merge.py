"""Re-imports merge into the stored data, then de-duplication and the k-core filter run over
the whole workspace (issue 12, attack 12): the report equals what is stored."""
from core.importers import ImportOptions, import_catalog
from core.workspace import Workspace


def _tsv(path, rows):
    path.write_text("user_id\titem_id\ttimestamp\n" + "".join(f"{u}\t{i}\t{t}\n" for u, i, t in rows))
    return path


def test_a_corrected_timestamp_for_a_stored_pair_keeps_one_row(tmp_path):
    first = [(f"u{u}", f"i{i}", 100 * u + i) for u in range(6) for i in range(5)]
    ws = Workspace.create(tmp_path / "ws")
    r1 = import_catalog(ws, "tsv", {"interactions": _tsv(tmp_path / "a.tsv", first)}, ImportOptions(kcore=2))
    assert r1.interactions == 30 == ws.counts()["interactions"]
    # the same pair again with a corrected (earlier) timestamp, plus one new pair
    second = [("u0", "i3", 1), ("u1", "i9", 999)]
    r2 = import_catalog(ws, "tsv", {"interactions": _tsv(tmp_path / "b.tsv", second)}, ImportOptions(kcore=0))
    stored = list(ws.db.execute("SELECT user, item, ts FROM interactions WHERE user='u0' AND item='i3'"))
    assert stored == [("u0", "i3", 1)]                        # one row: the earliest, as dedup keeps
    assert ws.counts()["interactions"] == 31                 # 30 - the replaced row + the new pair
    assert r2.interactions == 2 and r2.users == 2            # this import's rows, as stored
    assert r2.merged_away == [("u0", "i3", 3)]


def test_the_k_core_filter_sees_the_merged_data(tmp_path):
    # u9 has 2 interactions in the first file (dropped by a 3-core alone), 1 more in the second
    first = [(f"u{u}", f"i{i}", 10 * u + i) for u in range(5) for i in range(4)] + [("u9", "i0", 1), ("u9", "i1", 2)]
    ws = Workspace.create(tmp_path / "ws")
    import_catalog(ws, "tsv", {"interactions": _tsv(tmp_path / "a.tsv", first)}, ImportOptions(kcore=0))
    assert ws.counts()["interactions"] == 22
    second = [("u9", "i2", 3), ("u8", "i2", 5)]   # alone, neither file is a 3-core
    r = import_catalog(ws, "tsv", {"interactions": _tsv(tmp_path / "b.tsv", second)}, ImportOptions(kcore=3))
    users = {u for (u,) in ws.db.execute("SELECT DISTINCT user FROM interactions")}
    assert "u9" in users and "u8" not in users                # 3 over the merged data, and 1
    assert ws.counts()["interactions"] == 23 and len(users) == 6
    assert r.interactions == 1 and r.users == 1              # u9's row stored, u8's filtered out


def test_a_merge_that_would_empty_the_workspace_is_refused_and_nothing_changes(tmp_path):
    import pytest
    from core.errors import InputError
    ws = Workspace.create(tmp_path / "ws")
    import_catalog(ws, "tsv", {"interactions": _tsv(tmp_path / "a.tsv", [("u0", "i0", 1), ("u1", "i1", 2)])},
                   ImportOptions(kcore=0))
    before = list(ws.db.execute("SELECT * FROM interactions ORDER BY pos"))
    with pytest.raises(InputError, match="no interactions would be left"):
        import_catalog(ws, "tsv", {"interactions": _tsv(tmp_path / "b.tsv", [("u2", "i2", 3)])},
                       ImportOptions(kcore=5))
    assert list(ws.db.execute("SELECT * FROM interactions ORDER BY pos")) == before


def test_the_same_import_twice_stores_the_same_items_and_cold_split(tmp_path):
    """A kill just after the commit leaves a complete import; rerunning it must change nothing.
    It once stored the items whose rows the merged k-core dropped, and re-drew the cold split
    from them (seen as a flaky failure of test_kill_safety)."""
    rows = [(f"u{u}", f"i{i}", 10 * u + i) for u in range(8) for i in range(6)]
    rows += [(f"u{u}", f"rare{u}", 99) for u in range(8)]      # items a 3-core drops
    path = _tsv(tmp_path / "a.tsv", rows)
    ws = Workspace.create(tmp_path / "ws")
    opts = ImportOptions(kcore=3, cold_share=0.3, seed=1)
    r1 = import_catalog(ws, "tsv", {"interactions": path}, opts)

    def state():
        return (ws.item_ids(), [r[0] for r in ws.db.execute("SELECT id FROM items WHERE cold=1 ORDER BY id")],
                list(ws.db.execute("SELECT user, item, ts FROM interactions ORDER BY user, ts, pos")))

    before = state()
    assert len(before[0]) == 6 and before[1]            # the rare items never became items
    r2 = import_catalog(ws, "tsv", {"interactions": path}, opts)
    assert state() == before
    assert (r2.items, r2.cold_items, r2.interactions, r2.merged_away) == \
        (r1.items, r1.cold_items, r1.interactions, [])
