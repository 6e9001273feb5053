"""Hostile data files (issue 12, attacks 7-9): compressed inputs are streamed, with caps on
line length and decompressed size; errors name the file and line and show bytes escaped
and cut; blank lines are cheap and progress is reported while reading. The bombs here are
small (caps set low through ReadLimits) except two that meet the default caps."""
from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from core.errors import InputError
from core.importers import reading
from core.importers.pipeline import ImportOptions, import_catalog
from core.importers.reading import ReadLimits, iter_lines, line_batches, read_lines
from core.workspace import Item

REPO = Path(__file__).resolve().parents[1]
HEADER = b"user\titem\ttimestamp\n"
ROWS = b"".join(b"u%d\ti%d\t%d\n" % (u, i, 1000 + 10 * u + i) for u in range(3) for i in range(3))
COMPRESS = {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}


def _zip(data: bytes, name: str = "inter.tsv") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, data)
    return buf.getvalue()


def _stored(ws) -> tuple:
    """Everything an import could change, to show a refused one changed nothing."""
    db = ws.db
    return (db.execute("SELECT count(*) FROM interactions").fetchone(),
            sorted(ws.item_ids()), ws.get_meta("import"))


def _refused(ws, fmt: str, sources: dict, match: str, limits: ReadLimits | None = None) -> str:
    before = _stored(ws)
    with pytest.raises(InputError, match=match) as e:
        import_catalog(ws, fmt, sources, ImportOptions(kcore=0, limits=limits or ReadLimits()))
    assert _stored(ws) == before
    msg = str(e.value)
    assert "\x00" not in msg and len(msg) < 600, msg     # escaped and cut
    return msg


@pytest.fixture
def ws(workspace):
    with workspace.transaction() as db:
        workspace.upsert_items([Item(id="kept", title="Kept")], db)
        workspace.add_interactions([("old", "kept", 1)], db)
    return workspace


# ---- every compressed kind is read, and read the same ----------------------------------
@pytest.mark.parametrize("kind", ["gz", "bz2", "xz", "zip"])
def test_each_compression_imports_like_the_plain_file(tmp_path, workspace, kind):
    data = HEADER + ROWS
    p = tmp_path / f"inter.tsv.{kind}"
    p.write_bytes(_zip(data) if kind == "zip" else COMPRESS[kind](data))
    r = import_catalog(workspace, "tsv", {"interactions": p}, ImportOptions(kcore=0))
    assert r.interactions == 9 and sorted(workspace.item_ids()) == ["i0", "i1", "i2"]


def test_a_zip_of_two_files_is_refused(tmp_path, ws):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.tsv", HEADER + ROWS)
        z.writestr("b.tsv", HEADER + ROWS)
    (tmp_path / "two.zip").write_bytes(buf.getvalue())
    _refused(ws, "tsv", {"interactions": tmp_path / "two.zip"}, "must hold exactly one file, this one holds 2")


@pytest.mark.parametrize("kind", ["gz", "bz2", "xz"])
def test_a_truncated_compressed_file_is_named(tmp_path, ws, kind):
    data = COMPRESS[kind](HEADER + ROWS * 50)
    p = tmp_path / f"inter.tsv.{kind}"
    p.write_bytes(data[: len(data) // 2])
    _refused(ws, "tsv", {"interactions": p}, rf"inter.tsv.{kind}: (truncated|corrupt) ")


# ---- 7: a .gz of zeros -------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["gz", "bz2", "xz", "zip"])
def test_a_bomb_of_nul_bytes_is_stopped_by_the_line_cap(tmp_path, ws, kind):
    zeros = b"\x00" * (4 << 20)
    p = tmp_path / f"zeros.tsv.{kind}"
    p.write_bytes(_zip(zeros) if kind == "zip" else COMPRESS[kind](zeros))
    msg = _refused(ws, "tsv", {"interactions": p}, r"zeros.tsv.\w+:1: line longer than 100,000 characters",
                   ReadLimits(line_chars=100_000))
    assert "(stopped after 1,048,576; it starts '\\x00\\x00\\x00" in msg


def test_a_header_of_control_bytes_is_shown_escaped(tmp_path, ws):
    p = tmp_path / "ctl.tsv"
    p.write_bytes(b"\x00\x01\x1b[31m" * 100 + b"\n" + ROWS)
    msg = _refused(ws, "tsv", {"interactions": p}, "ctl.tsv:1: no column 'user' in the header")
    assert "\\x1b[31m" in msg and "\x1b" not in msg and "(700 characters)" in msg


def _peak_rss_growth_kib(code: str, *args) -> tuple[int, str]:
    """Run `code` in a fresh interpreter after the importer is loaded: its peak RSS growth."""
    wrapper = ("import resource, sys\nfrom core.importers.pipeline import import_catalog, ImportOptions\n"
               "from core.workspace import Workspace\nfrom core.errors import InputError\n"
               "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n" + code +
               "\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n")
    out = subprocess.run([sys.executable, "-c", wrapper, *map(str, args)], capture_output=True,
                         text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1]), out.stdout


def _gz_bomb(path: Path, head: bytes, fill: bytes, mib: int) -> None:
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(head)
        block = fill * (1 << 20)
        for _ in range(mib):
            f.write(block)


def test_the_default_line_cap_stops_a_one_line_bomb_in_bounded_memory(tmp_path):
    """A .json.gz of one 160 MiB line (attack 8, scaled down) under the default caps: refused
    at line 1 after 16 Mi characters, its peak RSS a fraction of the line."""
    p = tmp_path / "reviews.json.gz"
    _gz_bomb(p, b'{"asin": "', b"A", 160)
    code = ("ws = Workspace.create(sys.argv[2])\ntry:\n"
            "    import_catalog(ws, 'amazon2018', {'reviews': sys.argv[1]}, ImportOptions(kcore=0))\n"
            "except InputError as e:\n    print('refused:', e)\n")
    grew, out = _peak_rss_growth_kib(code, p, tmp_path / "ws")
    assert "reviews.json.gz:1: line longer than 16,777,216 characters" in out
    assert "it starts '{\"asin\": \"AAAA" in out
    assert grew < 120 * 1024, f"peak RSS grew {grew} KiB for a 160 MiB line"


# ---- 8: one long JSON line -------------------------------------------------------------
def test_an_amazon_bomb_of_one_line_names_the_line(tmp_path, ws):
    p = tmp_path / "meta.json.gz"
    p.write_bytes(gzip.compress(b'{"asin": "B1"}\n\n{"asin": "' + b"A" * (3 << 20) + b'"}\n'))
    msg = _refused(ws, "amazon2018", {"meta": p}, r"meta.json.gz:3: line longer than 65,536 characters",
                   ReadLimits(line_chars=65_536))
    assert "it starts '{\"asin\": \"AAAAAAAAAA" in msg


# ---- 9: a .gz of newlines --------------------------------------------------------------
def test_a_newline_bomb_is_stopped_by_the_size_cap_with_progress(tmp_path, ws):
    p = tmp_path / "inter.tsv.gz"
    p.write_bytes(gzip.compress(HEADER + b"\n" * (40 << 20)))
    calls = []
    before = _stored(ws)
    with pytest.raises(InputError, match=r"inter.tsv.gz:\d+: decompresses to more than 8,388,608 bytes"):
        import_catalog(ws, "tsv", {"interactions": p},
                       ImportOptions(kcore=0, limits=ReadLimits(floor=8 << 20, expansion=100)),
                       progress=lambda *a: calls.append(a))
    assert _stored(ws) == before
    reads = [(done, total) for stage, done, total in calls if stage == "read inter.tsv.gz"]
    assert len(reads) >= 8 and all(total == p.stat().st_size for _, total in reads)
    assert [d for d, _ in reads] == sorted(d for d, _ in reads)


def test_the_default_size_cap_stops_a_newline_bomb(tmp_path):
    """300 MiB of newlines in a .gz of about 1.4 MB: the default cap (256 MiB, or 200 times the
    file) stops it."""
    p = tmp_path / "inter.tsv.gz"
    _gz_bomb(p, HEADER, b"\n", 300)
    assert p.stat().st_size < 2 << 20
    code = ("ws = Workspace.create(sys.argv[2])\ntry:\n"
            "    import_catalog(ws, 'tsv', {'interactions': sys.argv[1]}, ImportOptions(kcore=0))\n"
            "except InputError as e:\n    print('refused:', e)\n")
    grew, out = _peak_rss_growth_kib(code, p, tmp_path / "ws")
    cap = int(re.search(r"inter.tsv.gz:\d+: decompresses to more than ([\d,]+) bytes", out)[1]
              .replace(",", ""))
    assert cap == max(256 << 20, 200 * p.stat().st_size) < 300 << 20
    assert grew < 100 * 1024, f"peak RSS grew {grew} KiB"


def test_rows_after_a_million_blank_lines_keep_their_line_numbers(tmp_path, workspace):
    p = tmp_path / "inter.tsv.gz"
    p.write_bytes(gzip.compress(HEADER + b"\n" * 1_000_000 + b" \t \n" * 1000 + ROWS + b"u9\ti9\tsoon\n"))
    with pytest.raises(InputError, match=r"inter.tsv.gz:1001011: timestamp 'soon' is not an integer"):
        import_catalog(workspace, "tsv", {"interactions": p}, ImportOptions(kcore=0))
    r = import_catalog(workspace, "tsv", {"interactions": p}, ImportOptions(kcore=0, skip_bad_lines=True))
    assert r.interactions == 9 and len(r.skipped_lines) == 1


def test_csv_keeps_blank_lines_inside_quoted_fields(tmp_path, workspace):
    p = tmp_path / "items.csv"
    p.write_bytes(b'id,title,text\n\n\na,"A","one\n\n\n  \ntwo"\nb,B,"x"\n"c",C,\n')
    r = import_catalog(workspace, "csv", {"items": p}, ImportOptions(kcore=0))
    assert r.items == 3
    assert {i.id: i.text for i in workspace.items()}["a"] == "one\n\n\n  \ntwo"
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b'id,title\n\n\na,"A\n\n')
    with pytest.raises(InputError, match="bad.csv:5: bad CSV: unexpected end of data "
                                          r"\(in the row that starts on line 4\)"):
        import_catalog(workspace, "csv", {"items": bad}, ImportOptions(kcore=0))


# ---- the real data sets still import with the default caps -------------------------------
@pytest.mark.realdata
def test_real_amazon_files_import_with_default_caps(scientific, workspace):
    r = import_catalog(workspace, "amazon2018", {"reviews": scientific / "reviews.json.gz",
                                                  "meta": scientific / "meta.json.gz"}, ImportOptions())
    assert r.interactions > 50_000 and r.items > 4_000


@pytest.mark.realdata
def test_real_ml1m_imports_the_same_plain_and_compressed(ml1m, tmp_path, workspace):
    src = ml1m / "interactions.tsv"
    lines = read_lines(src)
    gz = tmp_path / "interactions.tsv.gz"
    gz.write_bytes(gzip.compress(src.read_bytes(), compresslevel=1))
    assert list(read_lines(gz).numbered()) == list(lines.numbered())
    assert len(lines) == src.read_bytes().count(b"\n")
    r = import_catalog(workspace, "movielens", {"movies": ml1m / "movies.dat", "ratings": gz},
                       ImportOptions())
    assert (r.users, r.interactions) == (6040, 999_611)


# ---- fuzz: the line reader against a plain reference ------------------------------------
SETTINGS = settings(max_examples=200, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
LINE = st.one_of(st.text(alphabet=st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)),
                         max_size=30),
                 st.sampled_from(["", " ", "\t \t", "\r", "x\r", "\ufeffbom", "a" * 200]))


def _reference(text: str) -> list[tuple[int, str]]:
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [(k, line) for k, line in enumerate(lines, 1) if line.strip()]


@SETTINGS
@given(lines=st.lists(LINE, max_size=40), crlf=st.booleans(), final=st.booleans(),
       kind=st.sampled_from(["plain", "gz", "bz2", "xz", "zip"]), chunk=st.integers(1, 64),
       line_chars=st.one_of(st.integers(1, 250), st.just(1 << 24)), floor=st.integers(0, 600),
       expansion=st.integers(0, 3))
def test_fuzz_the_compressed_line_reader(tmp_path_factory, lines, crlf, final, kind, chunk,
                                         line_chars, floor, expansion):
    text = ("\r\n" if crlf else "\n").join(lines) + ("\n" if final and lines else "")
    data = text.encode("utf-8")
    packed = data if kind == "plain" else _zip(data) if kind == "zip" else COMPRESS[kind](data)
    p = tmp_path_factory.mktemp("fuzz") / f"f.{kind}"
    p.write_bytes(packed)
    limits = ReadLimits(line_chars=line_chars, floor=floor, expansion=expansion)
    want = _reference(text)
    physical = text.removeprefix("\ufeff").replace("\r\n", "\n").split("\n")
    too_big = kind != "plain" and len(data) > limits.cap(len(packed))
    too_long = max(map(len, physical), default=0) > line_chars
    try:
        got = [(n, line) for first, batch in line_batches(p, limits=limits, chunk=chunk)
               for n, line in zip(range(first, first + len(batch)), batch)]
    except InputError as e:
        assert ("decompresses to more than" in str(e) and too_big
                or "line longer than" in str(e) and too_long), e
        event("refused: " + ("size" if "decompresses" in str(e) else "line"))
        return
    assert not too_big and not too_long
    event("read")
    assert got == want
    if want:
        assert list(iter_lines(p, limits=limits)) == want


# ---- 11: control characters in ids, other scripts' digits in timestamps ------------------
@pytest.mark.parametrize("fmt, sep", [("tsv", "\t"), ("csv", ",")])
@pytest.mark.parametrize("row, match", [
    ("u1{s}i\x001{s}5", r"item id 'i\\x001' holds a control character \('\\x00' at position 1\)"),
    ("u\x1b1{s}i1{s}5", r"user id 'u\\x1b1' holds a control character"),
    ("u1{s}i1{s}١٢٣٤", "timestamp '١٢٣٤' is not an integer"),
    ("u1{s}i1{s}1_000_000", "timestamp '1_000_000' is not an integer"),
    ("u1{s}i1{s}²", "timestamp '²' is not an integer"),
])
def test_control_characters_and_foreign_digits_are_refused(tmp_path, ws, fmt, sep, row, match):
    p = tmp_path / f"inter.{fmt}"
    p.write_text(sep.join(("user", "item", "timestamp")) + "\nu0" + sep + "i0" + sep + "1\n"
                 + row.format(s=sep) + "\n", encoding="utf-8")
    _refused(ws, fmt, {"interactions": p}, rf"inter.{fmt}:3: " + match)


def test_signed_and_padded_timestamps_still_import(tmp_path, workspace):
    p = tmp_path / "inter.tsv"
    p.write_text("user\titem\ttimestamp\nu1\ti1\t-5\nu1\ti2\t+7\nu1\ti3\t 9 \n", encoding="utf-8")
    import_catalog(workspace, "tsv", {"interactions": p}, ImportOptions(kcore=0))
    assert [t for (t,) in workspace.db.execute("SELECT ts FROM interactions ORDER BY ts")] == [-5, 7, 9]


@pytest.mark.parametrize("fmt, name, text, match", [
    ("movielens", "ratings", "1::2::5::١٢٣٤\n", "timestamp '١٢٣٤' is not an integer"),
    ("movielens", "ratings", "1::2\x00::5::7\n", "movie id '2\\\\x00' holds a control character"),
    ("amazon2018", "reviews", '{"reviewerID": "R", "asin": "B\\u0000", "unixReviewTime": 5}\n',
     "'asin' 'B\\\\x00' holds a control character"),
    ("amazon2018", "reviews", '{"reviewerID": "R", "asin": "B", "unixReviewTime": "1_000"}\n',
     "timestamp '1_000' is not an integer"),
    ("recbole", "inter", "user_id:token\titem_id:token\ttimestamp:float\nu\ti\t١٢٣٤.0\n",
     "timestamp '١٢٣٤.0' is not a number"),
    ("recbole", "inter", "user_id:token\titem_id:token\ttimestamp:float\nu\ti\t1_000.5\n",
     "timestamp '1_000.5' is not a number"),
])
def test_every_format_refuses_them(tmp_path, ws, fmt, name, text, match):
    p = tmp_path / f"data.{name}"
    p.write_text(text, encoding="utf-8")
    _refused(ws, fmt, {name: p}, match)
