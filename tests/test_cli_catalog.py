"""`msm4sr items` on a real workspace: cold-start, new and searched items."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from core import cli
from core.workspace import Item, Workspace

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def ws(workspace):
    items = [Item(id=f"i{k:02d}", title=f"Item {k}", categories="Lab|Glass" if k % 3 == 0 else "Tools",
                  text=("Borosilicate beaker. " if k % 4 == 0 else "") + "x" * 1200 + " hidden",
                  cold=k in (2, 7, 11)) for k in range(20)]
    with workspace.transaction() as db:
        workspace.upsert_items(items, db)
        workspace.add_interactions([(f"u{u}", f"i{(u + j) % 20:02d}", j) for u in range(10)
                                    for j in range(5)], db)
    workspace.add_new_item("Hand-made flask", text="A new glass flask")
    return workspace


def items(capsys, ws, *args):
    assert cli.main(["items", str(ws.path), *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cold_and_new_items_are_listed_with_their_flags(ws, capsys):
    cold = items(capsys, ws, "--cold")
    assert [r["id"] for r in cold["items"]] == ["i02", "i07", "i11"] and cold["total"] == 3
    assert all(r["cold"] and not r["new"] for r in cold["items"])
    pop = ws.popularity()
    assert [r["interactions"] for r in cold["items"]] == [pop.get(i, 0) for i in ("i02", "i07", "i11")]
    new = items(capsys, ws, "--new")
    assert [(r["id"], r["title"], r["new"]) for r in new["items"]] == [("new:1", "Hand-made flask", True)]
    assert items(capsys, ws)["total"] == 21


def test_search_matches_every_word_as_the_app_does(ws, capsys):
    got = items(capsys, ws, "--search", "GLASS beaker")   # any case, every word, title/categories/text
    assert [r["id"] for r in got["items"]] == ["i00", "i12"]
    assert [r["id"] for r in items(capsys, ws, "--search", "glass", "--new")["items"]] == ["new:1"]
    # like the catalog search: only the first 1000 characters of the text are searched
    assert items(capsys, ws, "--search", "hidden")["total"] == 0
    assert items(capsys, ws, "--search", "no-such-word")["items"] == []


def test_limit_and_the_text_output(ws, capsys):
    got = items(capsys, ws, "--limit", 4)
    assert (got["total"], got["shown"], len(got["items"])) == (21, 4, 4)
    assert cli.main(["items", str(ws.path), "--cold", "--limit", "2"]) == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert lines[0].startswith("3 cold-start items (held out of training")
    assert lines[2].split()[0] == "i02" and "cold" in lines[2] and len(lines) == 4
    assert "... and 1 more (--limit 0 lists all)" in out.err
    assert len(items(capsys, ws, "--limit", 0)["items"]) == 21


def test_items_as_a_subprocess_refuses_two_filters(ws):
    r = subprocess.run([sys.executable, "-m", "core.cli", "items", str(ws.path), "--cold", "--new"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "not allowed with argument" in r.stderr
    r = subprocess.run([sys.executable, "-m", "core.cli", "items", str(ws.path), "--new"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "new:1" in r.stdout and "Hand-made flask" in r.stdout
