"""Models side by side on real tiny trained models: top-k, overlap, rank changes, metrics."""
import json
import shutil

import pytest

from core.cli import main
from core.errors import InputError
from core.explore.compare import compare, model_names, stored_metrics
from core.recommend import Recommender
from model_fixtures import shared_trained

pytestmark = pytest.mark.realdata      # ../shared/datasets


@pytest.fixture(scope="module")
def trained(ml1m, tmp_path_factory):
    return shared_trained(tmp_path_factory.mktemp("models"), ml1m)


@pytest.fixture(scope="module")
def recs(trained):
    ws = trained["ws"]
    return {k: Recommender.load(trained[k].model_dir, ws) for k in ("msm4sr", "sasrec")}


def test_two_models_side_by_side(trained, recs):
    ws = trained["ws"]
    seq = ws.sequences()[sorted(ws.sequences())[1]][:10]
    c = compare(ws, recs, seq, k=10)
    assert c.models == ["msm4sr", "sasrec"]
    for name, rec in recs.items():
        assert c.top[name] == rec.recommend(seq, k=10)
    a, b = ({i for i, _ in c.top[n]} for n in c.models)
    assert c.overlap == {"msm4sr|sasrec": len(a & b)}
    assert {r["item"] for r in c.rows} == a | b and len(c.rows) == len(a | b)
    for r in c.rows:
        for n in c.models:
            want = [i for i, _ in c.top[n]].index(r["item"]) + 1 if r["item"] in {i for i, _ in c.top[n]} else None
            assert r["ranks"][n] == want
        assert r["in_all"] == (r["item"] in a & b)
        ra, rb = r["ranks"]["msm4sr"], r["ranks"]["sasrec"]
        assert r["rank_change"]["sasrec"] == (ra - rb if ra and rb else None)
    # the sequence can be kept out of the lists
    c2 = compare(ws, recs, seq, k=10, exclude_sequence=True)
    assert not {i for t in c2.top.values() for i, _ in t} & set(seq)


def test_a_copy_of_a_model_agrees_fully(trained, recs, tmp_path):
    ws = trained["ws"]
    copy = tmp_path / "msm4sr-copy"
    shutil.copytree(trained["msm4sr"].model_dir, copy)
    three = dict(recs, copy=Recommender.load(copy, ws))
    seq = ws.item_ids()[10:16]
    c = compare(ws, three, seq, k=7)
    assert c.overlap["msm4sr|copy"] == 7
    assert c.overlap["msm4sr|sasrec|copy"] == c.overlap["msm4sr|sasrec"]
    assert all(r["rank_change"]["copy"] == 0 for r in c.rows if r["ranks"]["msm4sr"])
    with pytest.raises(InputError, match="two or three"):
        compare(ws, {"msm4sr": recs["msm4sr"]}, seq)


def test_stored_metrics_come_from_the_manifest(trained, recs, tmp_path):
    rec = recs["msm4sr"]
    m = stored_metrics(rec.manifest, rec.folder)
    flat = rec.manifest["metrics"]
    assert m["evaluated"] and m["valid"]["recall@10"] == flat["valid/recall@10"]
    assert m["test"]["ndcg@10"] == flat["test/ndcg@10"]
    assert m["cold"]["recall@10"] == flat["cold/model/recall@10"]
    assert m["cold_popularity"]["ndcg@10"] == flat["cold/popularity/ndcg@10"]
    never = stored_metrics(dict(rec.manifest, metrics={}))
    assert not never["evaluated"] and never["test"] is None and never["cold"] is None


def test_shipped_demo_model_has_its_popularity_reference():
    from core.checkpoint import read_manifest
    from core.demo import DEMO_MODEL
    folder, manifest = read_manifest(DEMO_MODEL)
    m = stored_metrics(manifest, folder)
    pop = json.loads((folder / "metrics.json").read_text())["popularity_test"]
    assert m["test_popularity"] == {"recall@10": pop["recall@10"], "ndcg@10": pop["ndcg@10"]}
    assert m["test"]["recall@10"] == manifest["metrics"]["test/recall@10"]


def test_model_names_stay_distinct(tmp_path):
    assert model_names([tmp_path / "a" / "m", tmp_path / "b" / "n"]) == ["m", "n"]
    assert model_names([tmp_path / "a" / "m", tmp_path / "b" / "m"]) == ["a/m", "b/m"]


def test_cli_compare(trained, capsys):
    ws = trained["ws"]
    seq = ",".join(ws.item_ids()[:5])
    models = f"{trained['msm4sr'].model_dir},{trained['sasrec'].model_dir}"
    assert main(["compare", str(ws.path), "--models", models, "--items", seq, "-k", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["models"] == ["msm4sr", "sasrec"] and len(out["top"]["sasrec"]) == 5
    assert set(out["metrics"]["msm4sr"]) >= {"valid", "test", "cold", "cold_popularity"}
    # by name in WS/models, text output with the metrics table
    assert main(["compare", str(ws.path), "--models", "msm4sr,sasrec", "--items", seq, "-k", "5"]) == 0
    text = capsys.readouterr().out
    assert "overlap: msm4sr|sasrec" in text and "cold popularity" in text
    assert main(["compare", str(ws.path), "--models", "msm4sr", "--items", seq]) == 2
    assert "two or three" in capsys.readouterr().err
