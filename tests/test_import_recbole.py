"""RecBole atomic files (.inter / .item) with typed headers."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import InputError
from core.importers import ImportOptions, import_catalog

K0 = ImportOptions(kcore=0)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def atomic(tmp_path):
    inter = write(tmp_path / "ml.inter",
                  "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                  "196\t242\t3\t881250949.0\n196\t302\t3\t881250950\n"
                  "22\t242\t1\t881250949.75\n22\t377\t1\t881250948\n")
    item = write(tmp_path / "ml.item",
                 "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
                 "242\tKolya\t1996\tComedy\n302\tL.A. Confidential\t1997\tCrime Film-Noir Mystery\n"
                 "377\tHeavyweights\t1994\tChildren Comedy\n999\tUnseen\t1990\tDrama\n")
    return {"inter": inter, "item": item}


def test_recbole_typed_headers_map_to_our_fields(workspace, atomic):
    r = import_catalog(workspace, "recbole", atomic, K0)
    assert (r.users, r.items, r.interactions) == (2, 3, 4)
    la = workspace.item("302")
    assert (la.title, la.categories) == ("L.A. Confidential", "Crime|Film-Noir|Mystery")
    assert workspace.sequences() == {"196": ["242", "302"], "22": ["377", "242"]}
    ts = dict(((u, i), t) for u, i, t in workspace.db.execute(
        "SELECT user, item, ts FROM interactions"))
    assert ts[("22", "242")] == 881250949


def test_recbole_without_timestamp_keeps_file_order(workspace, tmp_path):
    inter = write(tmp_path / "x.inter", "user_id:token\titem_id:token\nu\tb\nu\ta\nu\tc\n")
    import_catalog(workspace, "recbole", {"inter": inter}, K0)
    assert workspace.sequences() == {"u": ["b", "a", "c"]}


@pytest.mark.parametrize("text, where, reason", [
    ("user_id\titem_id:token\n", 1, "header column 'user_id' is not NAME:TYPE"),
    ("user_id:token\titem_id:weird\n", 1, "header column 'item_id:weird' is not NAME:TYPE"),
    ("uid:token\titem_id:token\nu\ti\n", 1, "no 'user_id' column in the header"),
    ("user_id:token\titem_id:token\ttimestamp:float\nu\ti\n", 2, "expected 3 columns, found 2"),
    ("user_id:token\titem_id:token\ttimestamp:float\nu\ti\tnan\n", 2, "timestamp out of range"),
    ("user_id:token\titem_id:token\ttimestamp:float\nu\ti\tt0\n", 2, "timestamp 't0' is not a number"),
])
def test_recbole_bad_input_is_named(workspace, atomic, tmp_path, text, where, reason):
    import_catalog(workspace, "recbole", atomic, K0)
    before = (workspace.counts(), workspace.sequences(), workspace.items())
    bad = write(tmp_path / "bad.inter", text)
    with pytest.raises(InputError) as e:
        import_catalog(workspace, "recbole", {"inter": bad}, K0)
    assert str(e.value).startswith(f"{bad}:{where}: {reason}")
    assert (workspace.counts(), workspace.sequences(), workspace.items()) == before


def test_recbole_duplicate_item(workspace, tmp_path):
    item = write(tmp_path / "d.item", "item_id:token\ttitle:token_seq\na\tOne\na\tTwo\n")
    with pytest.raises(InputError, match=rf"{item}:3: duplicate item id 'a' \(first on line 2\)"):
        import_catalog(workspace, "recbole", {"item": item})
