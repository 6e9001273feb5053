"""Fuzzing every line parser: arbitrary input parses or raises InputError, never
anything else; and a fuzzed import never harms data already in the workspace.

Each test counts the examples it ran; the counts are printed at the end of the
module (pytest's terminal summary) and each must reach a floor.
"""
from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import InputError
from core.importers import ImportOptions, amazon2018, common, import_catalog, movielens, recbole, tsv
from core.workspace import Item, Workspace

N = 200
SETTINGS = settings(max_examples=N, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])
RAN: Counter = Counter()
# Lines built from the characters that matter to the formats, plus anything else.
SPECIAL = st.sampled_from(["\t", ":", "::", "|", ",", '"', "{", "}", "[", "]", " ", "\r", "0",
                           "1", "-", ".", "e", "/", "..", "\x00", "\u2028", "\x85", "\ufeff",
                           "٣", "nan", "inf", "_", "a", "A"])
LINE = st.one_of(st.text(max_size=80),
                 st.lists(st.one_of(SPECIAL, st.text(max_size=4)), max_size=25).map("".join))
JSONV = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                     lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c,
                                                                         max_size=4),
                     max_leaves=8)
KEYS = st.sampled_from(["asin", "reviewerID", "unixReviewTime", "title", "description", "brand",
                        "category", "imageURL", "imageURLHighRes"])
JSON_LINE = st.dictionaries(KEYS, JSONV, max_size=9).map(json.dumps)


@pytest.fixture(scope="module", autouse=True)
def report_counts(request):
    yield
    total = sum(RAN.values())
    text = f"fuzz cases run: {total} ({', '.join(f'{k} {v}' for k, v in sorted(RAN.items()))})"
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture:   # shown even without -s
        with capture.global_and_fixture_disabled():
            print("\n" + text)
    else:
        print(text)


def either(fn, *args):
    """Call a parser: a result or InputError are fine; anything else fails the test."""
    try:
        return fn(*args)
    except InputError as e:
        assert str(e)
        return None


def floor(name):
    assert RAN[name] >= N // 2, f"{name} ran only {RAN[name]} cases"


# ---- line parsers ----------------------------------------------------------
@SETTINGS
@given(LINE)
def _movie(line):
    RAN["movielens movie"] += 1
    r = either(movielens.parse_movie_line, line, "movies.dat", 1)
    if r:
        assert r[0] and r[0] == r[0].strip()


@SETTINGS
@given(LINE)
def _rating(line):
    RAN["movielens rating"] += 1
    r = either(movielens.parse_rating_line, line, "ratings.dat", 1)
    if r:
        assert isinstance(r[2], int) and r[0] and r[1]


def test_fuzz_movielens():
    _movie()
    _rating()
    floor("movielens movie")
    floor("movielens rating")


@SETTINGS
@given(LINE, st.permutations([0, 1, 2]))
def _tsv_interaction(line, order):
    RAN["tsv interaction"] += 1
    idx = dict(zip(("user", "item", "timestamp"), order))
    either(tsv.parse_interaction, line.split("\t"), idx, 3, "i.tsv", 2)


@SETTINGS
@given(LINE)
def _tsv_item(line):
    RAN["tsv item"] += 1
    idx = {f: k for k, f in enumerate(tsv.ITEM_FIELDS)}
    with tempfile.TemporaryDirectory() as d:
        r = either(tsv.parse_item, line.split("\t"), idx, len(idx), Path(d).resolve(), "x.tsv", 2)
        if r and r[0].image:
            assert Path(r[0].image).is_relative_to(Path(d).resolve())


@SETTINGS
@given(st.lists(LINE, min_size=1, max_size=6))
def _tsv_fast_path_agrees(lines):
    """The fast path of read_interactions accepts exactly what parse_interaction accepts."""
    RAN["tsv fast path"] += 1
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "i.tsv"
        p.write_text("user\titem\ttimestamp\n" + "\n".join(lines) + "\n", encoding="utf-8",
                     newline="")
        try:
            text_lines = common.read_lines(p)
        except InputError:
            return
        skipped: list[str] = []
        got = tsv.read_interactions(p, "\t", {}, None, common.BadLines(True, skipped),
                                    lines=text_lines)
        want, want_skipped = [], []
        for n, line in list(text_lines.numbered())[1:]:   # the header is the first non-blank line
            if not line.strip():
                continue
            try:
                want.append(tsv.parse_interaction(line.split("\t"),
                                                  {"user": 0, "item": 1, "timestamp": 2}, 3, p, n))
            except InputError as e:
                want_skipped.append(str(e))
        assert list(got) == want and skipped == want_skipped


def test_fuzz_tsv():
    _tsv_interaction()
    _tsv_item()
    _tsv_fast_path_agrees()
    for name in ("tsv interaction", "tsv item", "tsv fast path"):
        floor(name)


@SETTINGS
@given(st.one_of(LINE, JSON_LINE))
def _review(line):
    RAN["amazon review"] += 1
    r = either(amazon2018.parse_review_line, line, "r.json", 1)
    if r:
        assert isinstance(r[0], str) and isinstance(r[2], int)


@SETTINGS
@given(st.one_of(LINE, JSON_LINE))
def _meta(line):
    RAN["amazon meta"] += 1
    r = either(amazon2018.parse_meta_line, line, "m.json", 1)
    if r:
        item, url = r
        assert all(isinstance(getattr(item, f), str) for f in ("id", "title", "brand", "text"))
        assert url is None or isinstance(url, str)


def test_fuzz_amazon():
    _review()
    _meta()
    floor("amazon review")
    floor("amazon meta")


@SETTINGS
@given(LINE, LINE)
def _recbole(head, line):
    RAN["recbole"] += 1
    names = either(recbole.parse_header, head, "x.inter", 1)
    if not names:
        return
    idx = either(recbole._index, names, recbole.INTER_NAMES, ("user", "item"), "x.inter", 1)
    if idx:
        either(recbole.parse_inter_line, line, idx, len(names), "x.inter", 2)
    idx = either(recbole._index, names, recbole.ITEM_NAMES, ("id",), "x.item", 1)
    if idx:
        either(recbole.parse_item_line, line, idx, len(names), "x.item", 2)


@SETTINGS
@given(LINE)
def _recbole_line(line):
    RAN["recbole line"] += 1
    idx = {"user": 0, "item": 1, "timestamp": 2}
    either(recbole.parse_inter_line, line, idx, 3, "x.inter", 2)


def test_fuzz_recbole():
    _recbole()
    _recbole_line()
    floor("recbole")
    floor("recbole line")


@SETTINGS
@given(LINE)
def _tags(line):
    RAN["tags"] += 1
    r = either(common.parse_tags, line, "t.tsv", 1)
    if r:
        assert all(w and isinstance(s, float) for w, s in r)


@SETTINGS
@given(st.binary(max_size=200), st.sampled_from([None, "utf-8", "latin-1", "utf-16"]))
def _read_lines(data, encoding):
    RAN["file bytes"] += 1
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "f.txt"
        p.write_bytes(data)
        either(common.read_lines, p, encoding)
        try:
            list(common.iter_lines(p, encoding))
        except InputError:
            pass


def test_fuzz_tags_and_file_reading():
    _tags()
    _read_lines()
    floor("tags")
    floor("file bytes")


# ---- a fuzzed import never harms what is already stored ---------------------
PRIOR_ITEMS = [Item(id=f"§{k}", title=f"Prior {k}", text="kept") for k in range(3)]
PRIOR_ROWS = [(f"§u{u}", f"§{k}", 100 * u + k) for u in range(3) for k in range(3)]


def _snapshot(ws):
    return (set(ws.db.execute("SELECT * FROM interactions")),
            {it.id: it for it in ws.items()}, set(ws.db.execute("SELECT * FROM keywords")))


@pytest.fixture(scope="module")
def prior_ws(tmp_path_factory):
    ws = Workspace.create(tmp_path_factory.mktemp("fuzz") / "ws")
    with ws.transaction() as db:
        ws.upsert_items(PRIOR_ITEMS, db)
        ws.add_interactions(PRIOR_ROWS, db)
        ws.set_keywords([("§0", "catalog-tags", [("kept", 1.0)])], db)
    yield ws
    ws.close()


FORMAT_FILES = st.sampled_from([
    ("tsv", "interactions", "user\titem\ttimestamp\n"),
    ("tsv", "items", "id\ttitle\timage\ttags\n"),
    ("csv", "interactions", "user,item,timestamp\n"),
    ("movielens", "ratings", ""),
    ("movielens", "movies", ""),
    ("amazon2018", "reviews", ""),
    ("amazon2018", "meta", ""),
    ("recbole", "inter", "user_id:token\titem_id:token\ttimestamp:float\n"),
])


@settings(SETTINGS, max_examples=N // 2)
@given(FORMAT_FILES, st.lists(st.one_of(LINE, JSON_LINE), max_size=8), st.booleans(),
       st.integers(0, 2))
def _fuzzed_import(ws, spec, lines, skip, k):
    RAN["fuzzed import"] += 1
    fmt, key, header = spec
    before = _snapshot(ws)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "data"
        p.write_bytes((header + "\n".join(lines)).encode("utf-8", "surrogatepass"))
        try:
            import_catalog(ws, fmt, {key: p}, ImportOptions(kcore=k, skip_bad_lines=skip))
        except InputError:
            assert _snapshot(ws) == before        # a failed import changes nothing
            return
    after = _snapshot(ws)
    assert before[0] <= after[0]                  # prior interactions are all still there
    for it in PRIOR_ITEMS:                        # the fuzz alphabet has no '§': untouched
        assert after[1][it.id] == before[1][it.id]
    assert before[2] <= after[2]


def test_fuzzed_imports_leave_prior_data_intact(prior_ws):
    _fuzzed_import(prior_ws)
    assert RAN["fuzzed import"] >= N // 4
    rows = set(prior_ws.db.execute("SELECT user, item, ts FROM interactions"))
    assert set(PRIOR_ROWS) <= rows
