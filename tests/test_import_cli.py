"""`msm4sr import` as a real subprocess and in-process."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from core import cli_import
from core.errors import InputError
from core.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
# Only the import section: these tests do not depend on the other sections importing cleanly.
ONLY_IMPORT = ("import sys, core.cli as c; c.SECTIONS = ('core.cli_import',); "
               "sys.exit(c.main(sys.argv[1:]))")


def run(*args, full=False):
    cmd = [sys.executable, "-m", "core.cli"] if full else [sys.executable, "-c", ONLY_IMPORT]
    return subprocess.run(cmd + [str(a) for a in args], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def files(tmp_path):
    inter = tmp_path / "inter.tsv"
    inter.write_text("uid\tiid\twhen\n" + "".join(
        f"u{u}\ti{(u + k) % 4}\t{k}\n" for u in range(3) for k in range(4)))
    items = tmp_path / "items.tsv"
    items.write_text("id\ttitle\n" + "".join(f"i{k}\tItem {k}\n" for k in range(4)))
    return inter, items


def test_cli_import_json_creates_the_workspace(tmp_path, files):
    inter, items = files
    ws = tmp_path / "new" / "ws"
    p = run("import", ws, "--format", "tsv", "--interactions", inter, "--items", items,
            "--columns", "user=uid,item=iid,timestamp=when", "--kcore", "2", "--json")
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert (report["users"], report["items"], report["interactions"]) == (3, 4, 12)
    assert len(report["items_without_image"]) == 4 and report["seconds"] > 0
    with Workspace.open(ws) as w:
        assert w.item("i2").title == "Item 2" and w.counts()["interactions"] == 12


def test_cli_bad_line_exits_2_and_keeps_data(tmp_path, files):
    inter, items = files
    ws = tmp_path / "ws"
    cols = "user=uid,item=iid,timestamp=when"
    assert run("import", ws, "--format", "tsv", "--interactions", inter, "--columns", cols,
               "--kcore", "0").returncode == 0
    bad = tmp_path / "bad.tsv"
    bad.write_text("uid\tiid\twhen\nz\ti1\t5\nz\ti2\tnoon\n")
    p = run("import", ws, "--format", "tsv", "--interactions", bad, "--columns", cols)
    assert p.returncode == 2
    # stderr is a pipe, so progress lines (core.progress.LineProgress) may come first
    assert p.stderr.strip().splitlines()[-1] == \
        f"msm4sr: error: {bad}:3: timestamp 'noon' is not an integer"
    assert p.stderr.count("error") == 1
    with Workspace.open(ws) as w:
        assert w.counts()["interactions"] == 12
    p = run("import", ws, "--format", "tsv", "--interactions", bad, "--columns", cols,
            "--kcore", "0", "--skip-bad-lines")
    assert p.returncode == 0 and f"{bad}:3: timestamp 'noon'" in p.stdout
    assert "imported 1 users, 1 items, 1 interactions" in p.stdout
    # a workspace this command would have created is not left behind on failure
    p = run("import", tmp_path / "never", "--format", "tsv", "--interactions", bad,
            "--columns", cols)
    assert p.returncode == 2 and not (tmp_path / "never").exists()


def test_cli_rejects_unknown_format(tmp_path):
    p = run("import", tmp_path / "ws", "--format", "xlsx")
    assert p.returncode == 2 and "invalid choice" in p.stderr


def test_full_cli_entry_point(tmp_path, files):
    """Through core.cli with every section, as `msm4sr` runs it."""
    inter, _ = files
    p = run("import", tmp_path / "ws", "--format", "tsv", "--interactions", inter, "--columns",
            "user=uid,item=iid,timestamp=when", "--kcore", "0", full=True)
    assert p.returncode == 0, p.stderr
    assert "imported 3 users, 4 items, 12 interactions" in p.stdout


def test_in_process_parser_and_columns_syntax(tmp_path, files):
    inter, _ = files
    parser = argparse.ArgumentParser()
    cli_import.add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["import", str(tmp_path / "ws"), "--format", "tsv", "--interactions",
                              str(inter), "--columns", "user=uid,,item=iid , timestamp = when",
                              "--kcore", "0", "--cold-share", "0.5", "--json"])
    assert args.func(args) == 0
    with Workspace.open(tmp_path / "ws") as w:
        assert w.counts()["cold_items"] == 2
    args = parser.parse_args(["import", str(tmp_path / "ws"), "--format", "tsv",
                              "--interactions", str(inter), "--columns", "user"])
    with pytest.raises(InputError, match="--columns: expected FIELD=HEADER"):
        args.func(args)
    args = parser.parse_args(["import", str(tmp_path / "ws"), "--format", "tsv",
                              "--interactions", str(inter), "--movies", str(inter)])
    with pytest.raises(InputError, match="--format tsv does not use --movies"):
        args.func(args)
