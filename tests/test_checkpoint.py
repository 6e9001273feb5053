"""Checkpoints: safetensors + JSON only; bad files and mismatched workspaces are refused clearly."""
import json
import shutil

import pytest
import torch

from core import checkpoint
from core.errors import CheckpointError
from core.features import store
from core.recommend import Recommender
from core.workspace import Item, Workspace
from model_fixtures import shared_trained


@pytest.fixture(scope="module")
def trained(ml1m, tmp_path_factory):
    return shared_trained(tmp_path_factory.mktemp("models"), ml1m)


@pytest.fixture
def model_copy(trained, tmp_path):
    dst = tmp_path / "model"
    shutil.copytree(trained["msm4sr"].model_dir, dst)
    return dst


@pytest.fixture
def ws_copy(trained, tmp_path):
    shutil.copytree(trained["ws"].path, tmp_path / "ws")
    ws = Workspace.open(tmp_path / "ws")
    yield ws
    ws.close()


@pytest.mark.realdata
def test_manifest_describes_the_model(trained):
    folder, m = checkpoint.read_manifest(trained["msm4sr"].model_dir / "manifest.json")
    assert m["model"] == "msm4sr" and m["stage"] == "finetune" and m["use_ids"] is True
    assert m["item_ids"] == trained["ws"].item_ids()
    assert m["features"]["text"] == {"model": "test-text", "dim": 32}
    assert m["features"]["image"]["source"] == "catalog-tags"
    assert m["modalities"] == ["text", "image"] and len(m["dataset"]["fingerprint"]) == 64
    assert "test/ndcg@10" in m["metrics"] and m["config"]["hidden"] == 32
    from safetensors import safe_open
    with safe_open(str(folder / "weights.safetensors"), "pt") as f:
        assert {k: list(f.get_slice(k).get_shape()) for k in f.keys()} == m["tensors"]


@pytest.mark.realdata
def test_round_trip_gives_identical_scores(trained):
    ws = trained["ws"]
    a = Recommender.load(trained["msm4sr"].model_dir, ws)
    model, *_ = checkpoint.load_model(trained["msm4sr"].model_dir)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in a.model.state_dict().items())
    seq = ws.item_ids()[3:9]
    assert a.recommend(seq) == Recommender.load(trained["msm4sr"].model_dir, ws).recommend(seq)


@pytest.mark.realdata
def test_truncated_weights_are_refused(model_copy, trained):
    w = model_copy / "weights.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or modified"):
        Recommender.load(model_copy, trained["ws"])


@pytest.mark.realdata
def test_crafted_files_are_refused(model_copy, trained):
    ws = trained["ws"]
    m = json.loads((model_copy / "manifest.json").read_text())
    # garbage that still matches the recorded hash: a wrong size is refused before reading
    w = model_copy / "weights.safetensors"
    real = w.read_bytes()
    w.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage" + b"\x00" * 64)
    m["weights_sha256"] = checkpoint._sha256(w)
    (model_copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(CheckpointError, match="80 bytes, the manifest says"):
        Recommender.load(model_copy, ws)
    # the right size and hash, a garbage header: refused as not safetensors
    n = int.from_bytes(real[:8], "little")
    w.write_bytes(real[:8] + b"{garbage".ljust(n) + real[8 + n:])
    m["weights_sha256"] = checkpoint._sha256(w)
    (model_copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        Recommender.load(model_copy, ws)
    # a manifest that is not JSON, or not ours
    (model_copy / "manifest.json").write_text("{nope")
    with pytest.raises(CheckpointError, match="unreadable manifest"):
        Recommender.load(model_copy, ws)
    (model_copy / "manifest.json").write_text(json.dumps({"format": "pickle"}))
    with pytest.raises(CheckpointError, match="not an MSM4SR Studio manifest"):
        Recommender.load(model_copy, ws)


@pytest.mark.realdata
def test_shapes_are_checked_against_manifest_and_config(trained, tmp_path):
    src = trained["msm4sr"].model_dir
    # a consistent pair of files whose config says hidden 48: shapes do not fit the model
    bad = tmp_path / "bad"
    shutil.copytree(src, bad)
    m = json.loads((bad / "manifest.json").read_text())
    m["config"]["hidden"] = 48
    (bad / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(CheckpointError, match="has shape .* the model needs"):
        checkpoint.load_model(bad)
    # a manifest that lists a wrong shape for a real tensor
    m = json.loads((src / "manifest.json").read_text())
    m["tensors"]["id_emb.weight"] = [3, 3]
    (bad / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(CheckpointError, match="id_emb.weight has shape"):
        checkpoint.load_model(bad)


@pytest.mark.realdata
def test_feature_extractor_mismatch_says_what_differs(trained, ws_copy):
    fs = store.load(ws_copy.features_dir, "text")
    fs.meta["model"] = "foo"
    store.save(ws_copy.features_dir, "text",
               store.FeatureSet(fs.ids, torch.zeros(len(fs.ids), 2, 48), fs.mask[:, :2], fs.meta))
    with pytest.raises(CheckpointError) as e:
        Recommender.load(trained["msm4sr"].model_dir, ws_copy)
    assert "text model differs: checkpoint test-text/32, workspace foo/48" in str(e.value)
    # image features removed: said so
    store.path_for(ws_copy.features_dir, "image").unlink()
    with pytest.raises(CheckpointError, match="image features: checkpoint catalog-tags/32.*none built"):
        Recommender.load(trained["msm4sr"].model_dir, ws_copy)
    # SASRec does not depend on features
    Recommender.load(trained["sasrec"].model_dir, ws_copy)


@pytest.mark.realdata
def test_item_mismatch_refused_but_new_items_accepted(trained, ws_copy):
    ws_copy.add_new_item("Brand new film", text="A brand new film.")
    rec = Recommender.load(trained["sasrec"].model_dir, ws_copy)  # new items are not a mismatch
    assert rec.item_ids == trained["ws"].item_ids()
    with ws_copy.transaction() as db:
        ws_copy.upsert_items([Item(id="zzz-catalog", title="Imported later")], db)
    with pytest.raises(CheckpointError, match="1 workspace items are unknown to the checkpoint"):
        Recommender.load(trained["sasrec"].model_dir, ws_copy)
    ws_copy.delete_item("zzz-catalog")
    ws_copy.delete_item(trained["ws"].item_ids()[0])
    with pytest.raises(CheckpointError, match="1 checkpoint items are not in the workspace"):
        Recommender.load(trained["sasrec"].model_dir, ws_copy)


def test_optimizer_state_round_trip(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(5, 4)).sum().backward()
        opt.step()
    checkpoint.save_state(tmp_path / "s", model, opt, {"epoch": 3})
    assert not list((tmp_path / "s").glob("*.pt")) and not list((tmp_path / "s").glob("*.tmp"))
    model2 = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    opt2 = torch.optim.Adam(model2.parameters(), lr=1e-2)
    st = checkpoint.load_state(tmp_path / "s", model2, opt2)
    assert st["epoch"] == 3
    x = torch.randn(5, 4)
    for m, o in ((model, opt), (model2, opt2)):
        o.zero_grad()
        m(x).sum().backward()
        o.step()
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), model2.parameters()))
