"""MovieLens importer: the real ml-1m-posters data set and small synthetic files."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.errors import InputError
from core.importers import ImportOptions, import_catalog
from core.progress import silent

K0 = ImportOptions(kcore=0)


@pytest.mark.realdata
@pytest.mark.slow
def test_ml1m_posters_imports_exactly(ml1m, workspace):
    calls = []
    report = import_catalog(workspace, "movielens",
                            {"movies": ml1m / "movies.dat", "ratings": ml1m / "interactions.tsv",
                             "posters": ml1m / "posters"},
                            ImportOptions(), progress=lambda *a: calls.append(a))
    assert (report.users, report.items, report.interactions) == (6040, 3416, 999611)
    assert len(report.items_without_image) == 4 and report.skipped_lines == []
    c = workspace.counts()
    assert (c["users"], c["items"], c["interactions"], c["items_with_image"]) == \
        (6040, 3416, 999611, 3412)
    toy = workspace.item("1")
    assert (toy.title, toy.categories, toy.text) == \
        ("Toy Story (1995)", "Animation|Children's|Comedy", "")
    assert toy.image == str((ml1m / "posters" / "1.jpg").resolve())
    for i in report.items_without_image:
        assert not (ml1m / "posters" / f"{i}.jpg").exists()
    # sequences are chronological
    ts = [r[0] for r in workspace.db.execute(
        "SELECT ts FROM interactions WHERE user='100' ORDER BY ts, pos")]
    seq = workspace.sequences()["100"]
    assert len(seq) == len(ts) and seq[0] == "3186"  # first line of the file for user 100
    assert {s for s, *_ in calls} >= {"process", "write"}
    # its speed is bench/bench_import.py's figure (wall and CPU seconds), not a test's


def write(path: Path, text: str, encoding="utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture
def small(tmp_path):
    movies = write(tmp_path / "movies.dat",
                   "1::Am\xe9lie (2001)::Comedy|Romance\n2::Heat (1995)::Action|Crime|Thriller\n"
                   "3::Odd::Title (1999)::Drama\n4::Unwatched (1990)::Drama\n", encoding="latin-1")
    ratings = write(tmp_path / "ratings.dat",
                    "10::1::5::100\n10::2::3::200\n10::3::4::200\n20::2::1::50\n20::5::2::60\n")
    posters = tmp_path / "posters"
    posters.mkdir()
    (posters / "1.jpg").write_bytes(b"jpg")
    (posters / "2.png").write_bytes(b"png")
    return {"movies": movies, "ratings": ratings, "posters": posters}


def test_small_movielens_latin1_titles_genres_posters(workspace, small):
    report = import_catalog(workspace, "movielens", small, K0)
    assert (report.users, report.items, report.interactions) == (2, 4, 5)
    assert workspace.item("1").title == "Am\xe9lie (2001)"
    assert workspace.item("3").title == "Odd::Title (1999)"
    assert workspace.item("2").categories == "Action|Crime|Thriller"
    assert workspace.item("2").image == str((small["posters"] / "2.png").resolve())
    assert report.items_without_image == ["3", "5"]   # 5 is rated but not in movies.dat
    assert workspace.item("5").title == "" and workspace.item("4") is None
    assert workspace.sequences() == {"10": ["1", "2", "3"], "20": ["2", "5"]}


def test_interactions_table_instead_of_ratings(workspace, small, tmp_path):
    table = write(tmp_path / "inter.tsv", "user_id\tmovie_id\ttimestamp\n10\t1\t5\n10\t2\t6\n")
    report = import_catalog(workspace, "movielens", {"movies": small["movies"], "ratings": table},
                            K0)
    assert report.interactions == 2 and workspace.item("2").title == "Heat (1995)"


def test_poster_symlink_leading_outside_is_refused(workspace, small, tmp_path):
    (tmp_path / "private.jpg").write_bytes(b"x")
    os.symlink(tmp_path / "private.jpg", small["posters"] / "3.jpg")
    with pytest.raises(InputError, match=r"item '3': image path '3.jpg' leads outside"):
        import_catalog(workspace, "movielens", small, K0)
    assert workspace.counts()["items"] == 0
    r = import_catalog(workspace, "movielens", small, ImportOptions(kcore=0, skip_bad_lines=True))
    assert "3" in r.items_without_image and len(r.skipped_lines) == 1


@pytest.mark.parametrize("key, line, reason", [
    ("ratings", "10::1::5", "expected UserID::MovieID::Rating::Timestamp, found 3 field(s)"),
    ("ratings", "10::1::5::soon", "timestamp 'soon' is not an integer"),
    ("ratings", "::1::5::7", "empty user id"),
    ("movies", "7 Seven (1995) Drama", "expected MovieID::Title::Genres, found 1 field(s)"),
    ("movies", " ::Nameless::Drama", "empty movie id"),
    ("movies", "2::Heat again::Action", "duplicate movie id '2' (first on line 2)"),
])
def test_bad_lines_are_named(workspace, small, key, line, reason):
    import_catalog(workspace, "movielens", small, K0)
    before = (workspace.counts(), workspace.sequences(), workspace.items())
    path = small[key]
    original = path.read_bytes()
    path.write_bytes(original + line.encode() + b"\n")
    n = original.count(b"\n") + 1
    with pytest.raises(InputError) as e:
        import_catalog(workspace, "movielens", small, K0, progress=silent)
    assert str(e.value) == f"{path}:{n}: {reason}"
    assert (workspace.counts(), workspace.sequences(), workspace.items()) == before
    r = import_catalog(workspace, "movielens", small, ImportOptions(kcore=0, skip_bad_lines=True))
    assert r.skipped_lines == [f"{path}:{n}: {reason}"]


def test_movies_in_utf8_need_the_encoding_option(workspace, small):
    small["movies"].write_bytes("1::Caf\u00e9 \u2603 (2001)::Comedy\n".encode("utf-8"))
    import_catalog(workspace, "movielens", small, K0)       # Latin-1 default: mojibake, no error
    assert workspace.item("1").title != "Caf\u00e9 \u2603 (2001)"
    import_catalog(workspace, "movielens", small, ImportOptions(kcore=0, encoding="utf-8"))
    assert workspace.item("1").title == "Caf\u00e9 \u2603 (2001)"


def test_wrong_source_keys_are_explained(workspace, small):
    with pytest.raises(InputError, match="unknown source keys \\['reviews'\\] for movielens"):
        import_catalog(workspace, "movielens", {"reviews": small["ratings"]})
    with pytest.raises(InputError, match="folder not found"):
        import_catalog(workspace, "movielens", {**small, "posters": small["posters"] / "x"})
