"""tsv/csv importer on real files and a real SQLite workspace."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.errors import InputError
from core.importers import FORMATS, ImportOptions, import_catalog
from core.workspace import Workspace

K0 = ImportOptions(kcore=0)


def write(path: Path, text: str, encoding="utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def inter_file(tmp_path, body: str, name="inter.tsv") -> Path:
    return write(tmp_path / name, "user\titem\ttimestamp\n" + body)


def snapshot(ws: Workspace):
    return (ws.counts(), ws.sequences(), ws.items(),
            list(ws.db.execute("SELECT * FROM interactions ORDER BY pos")),
            list(ws.db.execute("SELECT * FROM keywords ORDER BY item, source, rank")))


@pytest.fixture
def catalog(tmp_path):
    """Three items (two with a poster file, one pointing at a missing file) and 8 interactions."""
    data = tmp_path / "data"
    (data / "img").mkdir(parents=True)
    (data / "img" / "a.jpg").write_bytes(b"\xff\xd8a")
    (data / "img" / "b.png").write_bytes(b"\x89PNGb")
    items = write(data / "items.tsv",
                  "id\ttitle\tbrand\tcategories\ttext\timage\ttags\n"
                  "A\tRed shoe\tAcme\tShoes|Red\tA red shoe.\timg/a.jpg\tshoe:0.9|red:0.5\n"
                  "B\tBlue hat\t\tHats\t\timg/b.png\that|blue\n"
                  "C\tGreen sock\t\t\t\timg/missing.jpg\t\n"
                  "D\tNever bought\t\t\t\t\t\n")
    inter = inter_file(data, "u1\tA\t10\nu1\tB\t20\nu1\tC\t30\n"
                             "u2\tB\t5\nu2\tA\t7\n"
                             "u3\tC\t1\nu3\tA\t1\nu3\tB\t1\n")
    return {"interactions": inter, "items": items}


def test_tsv_import_stores_items_images_tags_and_meta(workspace, catalog):
    report = import_catalog(workspace, "tsv", catalog, K0)
    assert (report.users, report.items, report.interactions) == (3, 3, 8)
    assert report.items_without_image == ["C"]          # file missing -> no image
    c = workspace.counts()
    assert c["items"] == 3 and c["interactions"] == 8   # D has no interactions: not stored
    a = workspace.item("A")
    assert (a.title, a.brand, a.categories, a.text) == ("Red shoe", "Acme", "Shoes|Red", "A red shoe.")
    assert Path(a.image).is_absolute() and Path(a.image).read_bytes() == b"\xff\xd8a"
    assert workspace.item("C").image is None
    kw = workspace.keywords("A")["catalog-tags"]
    assert [(k.word, k.score) for k in kw] == [("shoe", 0.9), ("red", 0.5)]
    assert [(k.word, k.score) for k in workspace.keywords("B")["catalog-tags"]] == \
        [("hat", 1.0), ("blue", 1.0)]
    meta = workspace.get_meta("import")
    assert meta["format"] == "tsv" and meta["options"]["kcore"] == 0
    assert meta["sources"]["items"] == str(catalog["items"].resolve())


def test_timestamp_ties_keep_file_order(workspace, catalog):
    import_catalog(workspace, "tsv", catalog, K0)
    seqs = workspace.sequences()
    assert seqs["u3"] == ["C", "A", "B"]    # all at ts=1: file order
    assert seqs["u2"] == ["B", "A"]


def test_reimport_changes_nothing(workspace, catalog):
    import_catalog(workspace, "tsv", catalog, K0)
    before = snapshot(workspace)
    report = import_catalog(workspace, "tsv", catalog, K0)
    assert report.interactions == 8
    assert snapshot(workspace) == before


def test_items_only_catalog_keeps_all_items(workspace, catalog):
    report = import_catalog(workspace, "tsv", {"items": catalog["items"]})
    assert report.items == 4 and report.interactions == 0
    assert workspace.item_ids() == ["A", "B", "C", "D"]


def test_csv_quotes_and_column_mapping(workspace, tmp_path):
    inter = write(tmp_path / "i.csv", 'uid,when,iid\n"x",3,"p,1"\nx,4,p2\n')
    items = write(tmp_path / "items.csv", 'sku,name\n"p,1","Line one\nline two, with comma"\np2,Plain\n')
    cols = {"user": "uid", "item": "iid", "timestamp": "when", "id": "sku", "title": "name"}
    report = import_catalog(workspace, "csv", {"interactions": inter, "items": items,
                                              "columns": cols}, K0)
    assert report.interactions == 2
    assert workspace.item("p,1").title == "Line one\nline two, with comma"
    assert workspace.sequences() == {"x": ["p,1", "p2"]}


def test_bad_csv_line_after_multiline_field_is_named_by_its_line(workspace, tmp_path):
    # the multi-line field is a note: an id with a line break in it is refused (a control character)
    inter = write(tmp_path / "i.csv", 'user,item,timestamp,note\nu,a,1,"x\ny"\nu,b,oops,z\n')
    with pytest.raises(InputError, match=rf"{tmp_path / 'i.csv'}:4: timestamp 'oops'"):
        import_catalog(workspace, "csv", {"interactions": inter}, K0)


def test_kcore_filters_and_default_kcore_on_tiny_data_explains(workspace, tmp_path):
    # u1 has 2 items, u2 only 1: the 2-core keeps u1's... until item counts drop too
    body = "u1\ta\t1\nu1\tb\t2\nu2\ta\t3\nu2\tb\t4\nu3\tc\t5\n"
    inter = inter_file(tmp_path, body)
    report = import_catalog(workspace, "tsv", {"interactions": inter}, ImportOptions(kcore=2))
    assert (report.users, report.items, report.interactions) == (2, 2, 4)
    assert workspace.item_ids() == ["a", "b"]
    with pytest.raises(InputError, match="lower kcore"):
        import_catalog(workspace, "tsv", {"interactions": inter}, ImportOptions(kcore=5))
    assert workspace.counts()["interactions"] == 4


def test_dedup_keeps_earliest_pair_unless_disabled(workspace, tmp_path):
    inter = inter_file(tmp_path, "u\ta\t5\nu\tb\t6\nu\ta\t9\n")
    assert import_catalog(workspace, "tsv", {"interactions": inter}, K0).interactions == 2
    ws2 = Workspace.create(tmp_path / "ws2")
    r = import_catalog(ws2, "tsv", {"interactions": inter}, ImportOptions(kcore=0, dedup=False))
    assert r.interactions == 3 and ws2.sequences() == {"u": ["a", "b", "a"]}
    ws2.close()


def test_cold_share_marks_items_and_a_later_plain_import_keeps_them(workspace, tmp_path):
    body = "".join(f"u{u}\ti{i}\t{u * 100 + i}\n" for u in range(6) for i in range(10))
    inter = inter_file(tmp_path, body)
    report = import_catalog(workspace, "tsv", {"interactions": inter},
                            ImportOptions(cold_share=0.3, seed=1))
    cold = [r[0] for r in workspace.db.execute("SELECT id FROM items WHERE cold=1 ORDER BY id")]
    assert report.cold_items == 3 and len(cold) == 3
    import_catalog(workspace, "tsv", {"interactions": inter})
    assert [r[0] for r in workspace.db.execute(
        "SELECT id FROM items WHERE cold=1 ORDER BY id")] == cold


@pytest.mark.parametrize("line, reason", [
    ("u9\tA", "expected 3 columns, found 2"),
    ("u9\tA\t1\textra", "expected 3 columns, found 4"),
    ("u9\tA\tyesterday", "timestamp 'yesterday' is not an integer"),
    ("u9\tA\t1.5", "timestamp '1.5' is not an integer"),
    ("u9\tA\t99999999999999999999", "timestamp out of range"),
    ("\tA\t1", "empty user id"),
    ("u9\t  \t1", "empty item id"),
])
def test_malformed_line_is_named_and_nothing_is_lost(workspace, catalog, tmp_path, line, reason):
    import_catalog(workspace, "tsv", catalog, K0)
    before = snapshot(workspace)
    bad = inter_file(tmp_path, "u9\tA\t1\nu9\tB\t2\n" + line + "\nu9\tC\t3\n", name="bad.tsv")
    with pytest.raises(InputError) as e:
        import_catalog(workspace, "tsv", {"interactions": bad}, K0)
    assert str(e.value) == f"{bad}:4: {reason}"
    assert snapshot(workspace) == before
    report = import_catalog(workspace, "tsv", {"interactions": bad},
                            ImportOptions(kcore=0, skip_bad_lines=True))
    assert report.skipped_lines == [f"{bad}:4: {reason}"]
    assert report.interactions == 3 and workspace.sequences()["u9"] == ["A", "B", "C"]


def test_failure_during_the_write_rolls_back(workspace, catalog, tmp_path):
    import_catalog(workspace, "tsv", catalog, K0)
    before = snapshot(workspace)
    more = inter_file(tmp_path, "".join(f"n{u}\tA\t{u}\n" for u in range(300)), name="more.tsv")

    def boom(stage, done, total):
        if stage == "write" and done > 0:
            raise RuntimeError("disk on fire")
    with pytest.raises(RuntimeError):
        import_catalog(workspace, "tsv", {"interactions": more}, K0, progress=boom)
    assert snapshot(workspace) == before


def test_wrong_encoding_names_line_and_suggests_encoding(workspace, tmp_path):
    inter = write(tmp_path / "l1.tsv", "user\titem\ttimestamp\nu\tcaf\xe9\t1\nu\tb\t2\n",
                  encoding="latin-1")
    with pytest.raises(InputError, match=rf"{inter}:2: cannot decode as utf-8.*encoding"):
        import_catalog(workspace, "tsv", {"interactions": inter}, K0)
    assert workspace.counts()["interactions"] == 0
    import_catalog(workspace, "tsv", {"interactions": inter}, ImportOptions(kcore=0,
                                                                            encoding="latin-1"))
    assert workspace.sequences() == {"u": ["caf\xe9", "b"]}
    with pytest.raises(InputError, match="unknown encoding"):
        import_catalog(workspace, "tsv", {"interactions": inter},
                       ImportOptions(encoding="no-such-codec"))


def test_empty_missing_and_folder_inputs(workspace, tmp_path):
    empty = write(tmp_path / "empty.tsv", "\n  \n")
    with pytest.raises(InputError, match=rf"{empty}: file is empty"):
        import_catalog(workspace, "tsv", {"interactions": empty})
    with pytest.raises(InputError, match=rf"{tmp_path / 'nope.tsv'}: file not found"):
        import_catalog(workspace, "tsv", {"interactions": tmp_path / "nope.tsv"})
    with pytest.raises(InputError, match="is a folder"):
        import_catalog(workspace, "tsv", {"interactions": tmp_path})
    header_only = inter_file(tmp_path, "", name="h.tsv")
    with pytest.raises(InputError, match="no interactions left of 0"):
        import_catalog(workspace, "tsv", {"interactions": header_only}, K0)


def test_duplicate_item_ids_name_both_lines(workspace, tmp_path):
    items = write(tmp_path / "items.tsv", "id\ttitle\nA\tone\nB\ttwo\n\nA\tthree\n")
    with pytest.raises(InputError) as e:
        import_catalog(workspace, "tsv", {"items": items})
    assert str(e.value) == f"{items}:5: duplicate item id 'A' (first on line 2)"
    r = import_catalog(workspace, "tsv", {"items": items}, ImportOptions(skip_bad_lines=True))
    assert r.skipped_lines and workspace.item("A").title == "one"


def test_unknown_format_lists_formats(workspace):
    with pytest.raises(InputError) as e:
        import_catalog(workspace, "parquet", {})
    for f in FORMATS:
        assert f in str(e.value)


def test_header_missing_a_mapped_column(workspace, tmp_path):
    inter = inter_file(tmp_path, "u\ta\t1\n")
    with pytest.raises(InputError, match=rf"{inter}:1: no column 'uid' \(mapped to 'user'\)"):
        import_catalog(workspace, "tsv", {"interactions": inter, "columns": {"user": "uid"}})
    other = write(tmp_path / "o.tsv", "who\titem\ttimestamp\nu\ta\t1\n")
    with pytest.raises(InputError, match=rf"{other}:1: no column 'user'"):
        import_catalog(workspace, "tsv", {"interactions": other})
    with pytest.raises(InputError, match="unknown column fields"):
        import_catalog(workspace, "tsv", {"interactions": inter, "columns": {"usr": "who"}})


@pytest.fixture
def image_tree(tmp_path):
    root = tmp_path / "shop"
    (root / "img" / "sub").mkdir(parents=True)
    (root / "img" / "ok.jpg").write_bytes(b"ok")
    (tmp_path / "secret.jpg").write_bytes(b"secret")
    os.symlink(tmp_path / "secret.jpg", root / "img" / "link-out.jpg")
    os.symlink(root / "img" / "ok.jpg", root / "img" / "link-in.jpg")
    return root


@pytest.mark.parametrize("image", ["../secret.jpg", "img/../../secret.jpg", "{abs}",
                                   "img/link-out.jpg", "/etc/passwd"])
def test_image_paths_cannot_leave_the_image_folder(workspace, image_tree, tmp_path, image):
    image = image.format(abs=tmp_path / "secret.jpg")
    items = write(image_tree / "items.tsv", f"id\timage\nA\timg/ok.jpg\nB\t{image}\n")
    with pytest.raises(InputError, match=rf"{items}:3: image path .* leads outside"):
        import_catalog(workspace, "tsv", {"items": items})
    assert workspace.counts()["items"] == 0
    r = import_catalog(workspace, "tsv", {"items": items}, ImportOptions(skip_bad_lines=True))
    assert len(r.skipped_lines) == 1 and r.skipped_lines[0].startswith(f"{items}:3:")
    assert workspace.item_ids() == ["A"]


def test_image_paths_inside_the_folder_are_fine(workspace, image_tree):
    root = image_tree / "img"
    items = write(image_tree / "meta" / "items.tsv",
                  f"id\timage\nA\tsub/../ok.jpg\nB\tlink-in.jpg\nC\t{root / 'ok.jpg'}\nD\tnone.jpg\n")
    r = import_catalog(workspace, "tsv", {"items": items, "images_root": root})
    assert r.items_without_image == ["D"]
    for i in "ABC":
        assert workspace.item(i).image == str((root / "ok.jpg").resolve())
    with pytest.raises(InputError, match="folder not found"):
        import_catalog(workspace, "tsv", {"items": items, "images_root": root / "nope"})


def test_bad_tags_are_named(workspace, tmp_path):
    items = write(tmp_path / "items.tsv", "id\ttags\nA\tred:0.5\nB\tblue:nan\n")
    with pytest.raises(InputError, match=rf"{items}:3: tag 'blue:nan' has a score that is not finite"):
        import_catalog(workspace, "tsv", {"items": items})


def test_interactions_only_import_keeps_item_details(workspace, catalog, tmp_path):
    import_catalog(workspace, "tsv", catalog, K0)
    more = inter_file(tmp_path, "u7\tA\t50\nu7\tZ\t51\n", name="more.tsv")
    import_catalog(workspace, "tsv", {"interactions": more}, K0)
    assert workspace.item("A").title == "Red shoe" and workspace.item("A").image
    assert workspace.item("Z").title == "" and workspace.sequences()["u7"] == ["A", "Z"]


@pytest.mark.parametrize("opts, reason", [
    (ImportOptions(kcore=-1), "kcore must be a whole number >= 0"),
    (ImportOptions(kcore=2.5), "kcore must be a whole number >= 0"),
    (ImportOptions(cold_share=1.0), r"cold_share must be in \[0, 1\)"),
    (ImportOptions(cold_share=-0.1), r"cold_share must be in \[0, 1\)"),
])
def test_bad_options_are_refused_before_reading(workspace, tmp_path, opts, reason):
    with pytest.raises(InputError, match=reason):
        import_catalog(workspace, "tsv", {"interactions": tmp_path / "not-read.tsv"}, opts)
