"""`msm4sr import` holds out 5 % of the items as cold-start items unless told otherwise,
and says how many it held out."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core import cli
from core.cli_import import COLD_SHARE
from core.importers import ImportOptions
from core.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def inter(tmp_path):
    """60 items, 30 users with 8 interactions each (every item 4 times)."""
    f = tmp_path / "inter.tsv"
    f.write_text("user\titem\ttimestamp\n" + "".join(
        f"u{u}\ti{(2 * u + k) % 60}\t{k}\n" for u in range(30) for k in range(8)))
    return f


def test_the_default_holds_out_five_percent_and_says_so(tmp_path, inter):
    assert COLD_SHARE == 0.05 and ImportOptions().cold_share == 0.0   # the library keeps 0
    r = subprocess.run([sys.executable, "-m", "core.cli", "import", str(tmp_path / "ws"), "--format",
                        "tsv", "--interactions", str(inter), "--kcore", "0"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    with Workspace.open(tmp_path / "ws") as ws:
        cold = [i.id for i in ws.items() if i.cold]
    assert len(cold) == 3   # 5 % of 60
    assert re.search(r"cold-start items: 3 of 60 held out of training \(--cold-share 0\.05\)",
                     r.stdout), r.stdout
    assert f"msm4sr items {tmp_path / 'ws'} --cold" in r.stdout


def test_cold_share_zero_and_too_small_catalogs_are_named(tmp_path, inter, capsys):
    assert cli.main(["import", str(tmp_path / "a"), "--format", "tsv", "--interactions",
                     str(inter), "--kcore", "0", "--cold-share", "0"]) == 0
    out = capsys.readouterr().out
    assert "cold-start items: none held out (--cold-share 0), so there is no cold-start evaluation" in out
    small = tmp_path / "small.tsv"
    small.write_text("user\titem\ttimestamp\n" + "".join(f"u{u}\ti{k}\t{k}\n" for u in range(3)
                                                         for k in range(4)))
    assert cli.main(["import", str(tmp_path / "b"), "--format", "tsv", "--interactions",
                     str(small), "--kcore", "0"]) == 0
    assert "none held out (--cold-share 0.05 of 4 items rounds to 0)" in capsys.readouterr().out
    assert cli.main(["import", str(tmp_path / "c"), "--format", "tsv", "--interactions",
                     str(inter), "--kcore", "0", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert (rep["cold_items"], rep["cold_share"]) == (3, 0.05)


def test_the_readme_states_the_same_default():
    readme = (REPO / "README.md").read_text()
    assert f"default `--cold-share {COLD_SHARE:g}`" in readme
    help_text = subprocess.run([sys.executable, "-m", "core.cli", "import", "--help"], cwd=REPO,
                               capture_output=True, text=True, timeout=60).stdout
    assert "default 0.05" in " ".join(help_text.split())
