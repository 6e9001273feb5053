"""`msm4sr recommend` through the real command line: history exclusion, --items-file,
-k checks, and the text, JSON and CSV outputs."""
import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core import cli
from core.features import store
from core.recommend import Recommender
from core.workspace import Item, Workspace
from model_fixtures import shared_trained

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(ml1m, tmp_path_factory):
    return shared_trained(tmp_path_factory.mktemp("models"), ml1m)


def run(capsys, *args):
    code = cli.main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _seq(ws, n=8):
    user = sorted(ws.sequences())[3]
    return ws.sequences()[user][:n]


def test_history_is_left_out_by_default_when_no_user_repeats_an_item(trained, capsys):
    ws, model = trained["ws"], trained["msm4sr"].model_dir
    seq = _seq(ws)
    rec = Recommender.load(model, ws)
    code, out, err = run(capsys, "recommend", ws.path, "--model", model, "--items", ",".join(seq),
                         "-k", 30, "--json")
    assert code == 0, err
    got = json.loads(out)
    assert got["exclude_history"] is True and got["k"] == 30
    ids = [r["item"] for r in got["recommendations"]]
    assert ids == [i for i, _ in rec.recommend(seq, k=30, exclude=seq)]
    assert not set(ids) & set(seq)
    assert [r["rank"] for r in got["recommendations"]] == list(range(1, 31))
    # --include-history gives the model's plain ranking, history items included where they rank
    code, out, _ = run(capsys, "recommend", ws.path, "--model", model, "--items", ",".join(seq),
                       "-k", 30, "--json", "--include-history")
    plain = [i for i, _ in rec.recommend(seq, k=30)]
    assert [r["item"] for r in json.loads(out)["recommendations"]] == plain
    assert json.loads(out)["exclude_history"] is False
    # the text output says what it did and how to change it
    code, out, err = run(capsys, "recommend", ws.path, "--model", model, "--items", ",".join(seq))
    assert "history left out: the catalog has no repeat interactions; --include-history" in err
    assert out.splitlines()[0].split()[1] == ids[0]


def test_a_catalog_with_repeat_interactions_keeps_the_history(trained, tmp_path, capsys):
    shutil.copytree(trained["ws"].path, tmp_path / "ws")
    with Workspace.open(tmp_path / "ws") as ws:
        user, seq = next(iter(ws.sequences().items()))
        with ws.transaction() as db:   # the user buys their first item again, later
            ws.add_interactions([(user, seq[0], 10**10)], db)
        seq = _seq(ws)
    model = trained["msm4sr"].model_dir
    code, out, err = run(capsys, "recommend", tmp_path / "ws", "--model", model, "--items",
                         ",".join(seq), "-k", 12, "--json")
    assert code == 0, err
    got = json.loads(out)
    assert got["exclude_history"] is False
    with Workspace.open(tmp_path / "ws") as ws:
        want = Recommender.load(model, ws).recommend(seq, k=12)
    assert [r["item"] for r in got["recommendations"]] == [i for i, _ in want]
    code, out, _ = run(capsys, "recommend", tmp_path / "ws", "--model", model, "--items",
                       ",".join(seq), "-k", 12, "--json", "--exclude-history")
    assert not {r["item"] for r in json.loads(out)["recommendations"]} & set(seq)


def test_items_file_takes_long_histories_and_ids_with_commas(trained, tmp_path, capsys):
    shutil.copytree(trained["ws"].path, tmp_path / "ws")
    ws = Workspace.open(tmp_path / "ws")
    twin = ws.item_ids()[5]
    odd = "kit, 2 pcs"   # an id with a comma: --items cannot carry it
    with ws.transaction() as db:
        ws.upsert_items([Item(id=odd, title="Kit of two", is_new=True)], db)
    for m in store.MODALITIES:   # its features: a copy of a catalog item's
        fs = store.load(ws.features_dir, m)
        k = fs.index()[twin]
        store.save(ws.features_dir, m, store.FeatureSet(
            fs.ids + [odd], torch.cat([fs.vectors, fs.vectors[k:k + 1]]),
            torch.cat([fs.mask, fs.mask[k:k + 1]]), fs.meta))
    long = ws.item_ids()[:70] + [odd]   # longer than max_len: the last max_len count
    f = tmp_path / "history.txt"
    f.write_text("\n".join(long[:30]) + "\n\n" + "\n".join(long[30:]) + "\n")
    model = trained["msm4sr"].model_dir
    code, out, err = run(capsys, "recommend", tmp_path / "ws", "--model", model, "--items-file", f,
                         "-k", 5, "--json")
    assert code == 0, err
    got = json.loads(out)
    assert got["sequence"] == long
    want = Recommender.load(model, ws).recommend(long, k=5, exclude=long)
    assert [r["item"] for r in got["recommendations"]] == [i for i, _ in want]
    # repeated --items flags add up, in order
    code, out, _ = run(capsys, "recommend", tmp_path / "ws", "--model", model, "--items",
                       ",".join(long[:3]), "--items", long[3], "-k", 5, "--json")
    assert json.loads(out)["sequence"] == long[:4]
    # an unknown id names the file and line
    f.write_text(f"{long[0]}\nno-such-item\n")
    code, out, err = run(capsys, "recommend", tmp_path / "ws", "--model", model, "--items-file", f)
    assert code == 2 and f"{f}:2: unknown item 'no-such-item'" in err
    ws.close()


@pytest.mark.parametrize("k", ["0", "-5", "ten"])
def test_k_must_be_a_positive_whole_number(trained, capsys, k):
    ws = trained["ws"]
    with pytest.raises(SystemExit) as e:
        cli.main(["recommend", str(ws.path), "--model", str(trained["sasrec"].model_dir),
                  "--items", ws.item_ids()[0], "-k", k])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument -k:" in err and "Traceback" not in err


def test_a_huge_k_gives_the_whole_catalog(trained, capsys):
    ws = trained["ws"]
    seq = _seq(ws, 4)
    code, out, err = run(capsys, "recommend", ws.path, "--model", trained["sasrec"].model_dir,
                         "--items", ",".join(seq), "-k", 10**12, "--format", "json")
    assert code == 0, err
    ids = [r["item"] for r in json.loads(out)["recommendations"]]
    assert sorted(ids) == sorted(set(ws.item_ids()) - set(seq))


def test_csv_and_json_exports_to_stdout_and_to_a_file(trained, tmp_path, capsys):
    ws, model = trained["ws"], trained["msm4sr"].model_dir
    seq = _seq(ws)
    _, js, _ = run(capsys, "recommend", ws.path, "--model", model, "--items", ",".join(seq),
                   "-k", 6, "--format", "json")
    want = json.loads(js)["recommendations"]
    _, alias, _ = run(capsys, "recommend", ws.path, "--model", model, "--items", ",".join(seq),
                      "-k", 6, "--json")
    assert json.loads(alias) == json.loads(js)
    _, out, _ = run(capsys, "recommend", ws.path, "--model", model, "--items", ",".join(seq),
                    "-k", 6, "--format", "csv")
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["rank", "item_id", "title", "score"]
    assert [r[1] for r in rows[1:]] == [w["item"] for w in want]
    assert [r[2] for r in rows[1:]] == [ws.item(w["item"]).title for w in want]
    assert [float(r[3]) for r in rows[1:]] == [w["score"] for w in want]
    target = tmp_path / "top.csv"
    code, out, err = run(capsys, "recommend", ws.path, "--model", model, "--items", ",".join(seq),
                         "-k", 6, "--format", "csv", "--out", target)
    assert code == 0 and out == "" and f"wrote 6 recommendations to {target}" in err
    assert list(csv.reader(io.StringIO(target.read_text()))) == rows


def test_recommend_as_a_subprocess_with_a_bad_k(trained):
    ws = trained["ws"]
    r = subprocess.run([sys.executable, "-m", "core.cli", "recommend", str(ws.path), "--model",
                        str(trained["sasrec"].model_dir), "--items", ws.item_ids()[0], "-k", "-5"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "argument -k: must be 1 or more, got -5" in r.stderr and "Traceback" not in r.stderr
