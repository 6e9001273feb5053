"""Feature vectors read through a row map over the memory-mapped feature file (FeatureRows),
against copies of the same rows in model order: the same item vectors, losses and scores,
zero rows and masks for missing items, and no [N, V, D] copy."""
import numpy as np
import pytest
import torch

from core.config import load_config
from core.data import FeatureRows, align_features, load_dataset
from core.features import store
from core.model import build
from core.model.sampled import NegativeSampler
from model_fixtures import TINY, load_trained, make_workspace, shared_trained


def copied(fs, item_ids):
    """The copy align_features used to make: rows in model order, zeros where absent."""
    where = fs.index()
    V = int(fs.mask.any(0).nonzero().max()) + 1
    x = torch.zeros(len(item_ids) + 1, V, fs.dim, dtype=torch.float16)
    m = torch.zeros(len(item_ids) + 1, V, dtype=torch.bool)
    for k, i in enumerate(item_ids, 1):
        if i in where:
            x[k], m[k] = fs.vectors[where[i], :V], fs.mask[where[i], :V]
    return x, m


def mapped_from(t: torch.Tensor, path) -> bool:
    """Whether tensor t's memory lies in a mapping of the file `path` (/proc/self/maps)."""
    ptr = t.data_ptr()
    for line in open("/proc/self/maps"):
        parts = line.split()
        if len(parts) >= 6 and parts[5] == str(path):
            lo, hi = (int(a, 16) for a in parts[0].split("-"))
            if lo <= ptr < hi:
                return True
    return False


@pytest.fixture
def feature_file(tmp_path):
    g = torch.Generator().manual_seed(0)
    ids = [f"f{k}" for k in range(7)]
    x = torch.randn(7, 6, 5, generator=g).half()
    mask = torch.zeros(7, 6, dtype=torch.bool)
    mask[:, :2] = True
    mask[3, :4] = True          # the widest item uses 4 of the 6 slots
    mask[5] = False             # an item in the file without vectors
    store.save(tmp_path, "text", store.FeatureSet(ids, x, mask, {"model": "t"}))
    return store.load(tmp_path, "text"), tmp_path / "text.safetensors"


def test_row_map_reads_the_file_rows_in_model_order_and_zeros_for_the_missing(feature_file):
    fs, _ = feature_file
    order = ["f3", "zz", "f0", "f6", "f5", "yy", "f1"]    # zz, yy: not in the file
    rows, mask = align_features(fs, order)
    want, want_mask = copied(fs, order)
    assert isinstance(rows, FeatureRows) and rows.shape == want.shape == (8, 4, 5)
    assert torch.equal(mask, want_mask)
    assert not mask[[0, 2, 5, 6]].any()                   # padding, zz, f5 (no vectors), yy
    every = torch.arange(8)
    assert torch.equal(rows[every], want)
    assert torch.equal(rows[every, :2], want[:, :2])
    assert torch.equal(rows[torch.tensor([2, 6, 0])], torch.zeros(3, 4, 5, dtype=torch.float16))
    assert torch.equal(rows[1], want[1]) and torch.equal(rows[[7, 1, 1]], want[[7, 1, 1]])
    assert torch.equal(rows[torch.tensor([[3, 2], [0, 7]])], want[torch.tensor([[3, 2], [0, 7]])])
    assert rows[every].dtype == torch.float16
    none = FeatureRows(torch.zeros(0, 2, 5, dtype=torch.float16), torch.tensor([-1, -1]))   # a file of no items
    assert torch.equal(none[torch.arange(2)], torch.zeros(2, 2, 5, dtype=torch.float16))


def test_row_map_holds_the_mapped_file_not_a_copy(feature_file):
    fs, path = feature_file
    rows, _ = align_features(fs, ["f2", "f1"])
    # the same storage as the file's mapping (a copy would have its own)
    assert rows.vectors.untyped_storage().data_ptr() == fs.vectors.untyped_storage().data_ptr()
    assert mapped_from(rows.vectors, path) and not mapped_from(rows[torch.arange(3)], path)
    assert rows.rows.dtype == torch.int64 and rows.rows.tolist() == [-1, 2, 1]
    assert rows.to("cpu") is rows


def test_row_map_moves_whole_to_another_device(feature_file):
    fs, _ = feature_file
    rows, _ = align_features(fs, ["f3", "zz", "f0"])
    moved = rows.to("meta")   # CUDA takes the same path: gathered in chunks onto the device
    assert isinstance(moved, torch.Tensor) and moved.device.type == "meta"
    assert moved.shape == rows.shape and moved.dtype == torch.float16


@pytest.fixture(scope="module")
def trained(ml1m, tmp_path_factory):
    return shared_trained(tmp_path_factory.mktemp("models"), ml1m)


def dense(feats: dict) -> dict:
    return {m: (x[torch.arange(len(x))], k) for m, (x, k) in feats.items()}


def test_a_workspace_s_features_reach_the_model_as_the_mapped_file(ml1m, tmp_path):
    ws = make_workspace(tmp_path / "ws", ml1m, users=40)
    cfg = load_config(overrides=dict(TINY))
    ds = load_dataset(ws, cfg)
    for m in ("text", "image"):
        x, _ = ds.features[m]
        assert isinstance(x, FeatureRows)
        assert mapped_from(x.vectors, store.path_for(ws.features_dir, m))
    model = build(cfg, ds.n_items, *(ds.dims()[m] for m in ("text", "image")))
    model.set_features(ds.features)
    model.to("cpu").float()   # moves and casts the model; the row map stays itself
    assert all(model.feats[m][0] is ds.features[m][0] for m in ("text", "image"))


@pytest.mark.parametrize("softmax", ["full", "sampled"])
def test_losses_and_gradients_equal_those_of_copied_features(ml1m, tmp_path, softmax):
    ws = make_workspace(tmp_path / "ws", ml1m, users=60)
    # one item left out of the image file: the row map must give it zero rows too
    fs = store.load(ws.features_dir, "image")
    store.save(ws.features_dir, "image", store.FeatureSet(fs.ids[1:], fs.vectors[1:].clone(), fs.mask[1:], fs.meta))
    cfg = load_config(overrides=dict(TINY, softmax=softmax, sampled_negatives=40, dropout=0.0,
                                     attn_dropout=0.0, adaptor_dropout=0.0, id_dropout=0.1))
    ds = load_dataset(ws, cfg)
    assert not ds.features["image"][1][ds.index[fs.ids[0]]].any()
    models = []
    for feats in (ds.features, dense(ds.features)):
        torch.manual_seed(0)
        model = build(cfg, ds.n_items, ds.dims()["text"], ds.dims()["image"])
        model.seen.copy_(torch.from_numpy(ds.seen).float())
        model.set_features(feats)
        model.sampler = NegativeSampler.for_dataset(ds.train, ds.n_items, 40)
        models.append(model)
    inp = torch.from_numpy(np.stack([np.pad(s[:-1][-8:], (8 - len(s[:-1][-8:]), 0)) for s in ds.train[:16]]))
    tgt = torch.from_numpy(np.stack([np.pad(s[1:][-8:], (8 - len(s[1:][-8:]), 0)) for s in ds.train[:16]]))
    for stage in ("pretrain", "finetune"):
        got = []
        for model in models:
            model.use_ids = stage == "finetune"
            model.zero_grad()
            loss, _ = model.loss(inp, tgt, stage, torch.Generator().manual_seed(3))
            loss.backward()
            got.append((loss.item(), [p.grad.clone() for p in model.mods.parameters() if p.grad is not None]))
        assert got[0][0] == got[1][0], stage
        assert got[0][1] and all(torch.equal(a, b) for a, b in zip(got[0][1], got[1][1])), stage
    with torch.no_grad():
        a, b = (m.eval().all_item_vectors(chunk=50) for m in models)
    assert all(torch.equal(a[m], b[m]) for m in a)


def test_scores_and_recommendations_equal_those_of_copied_features(trained):
    from core.evaluate import rank_cases
    from core.recommend import Recommender
    model, cfg, ds = load_trained(trained, "msm4sr")
    ranks = rank_cases(model, ds.test, cfg.max_len)
    table = model.item_table()
    model.set_features(dense(ds.features))
    assert torch.equal(model.item_table(), table)
    assert np.array_equal(rank_cases(model, ds.test, cfg.max_len), ranks)
    rec = Recommender.load(trained["msm4sr"].model_dir, trained["ws"])
    assert isinstance(rec.model.feats["text"][0], FeatureRows)
    rec.model.set_features(dense(rec.model.feats))
    again = Recommender(rec.model, rec.cfg, rec.manifest, rec.folder, rec.ws, rec.device)
    assert torch.equal(again.table, rec.table)
    seq = [rec.item_ids[k] for k in (5, 1, 30)]
    assert again.recommend(seq, k=20, exclude=seq) == rec.recommend(seq, k=20, exclude=seq)


def mapped_rss(path) -> int:
    """Bytes of the file `path` resident in this process's maps (/proc/self/smaps)."""
    total, inside = 0, False
    for line in open("/proc/self/smaps"):
        head = line.split()
        if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            inside = len(head) >= 6 and head[5] == str(path)
        elif inside and head[0] == "Rss:":
            total += int(head[1]) * 1024
    return total


def test_a_pass_over_every_item_leaves_no_file_pages_resident(tmp_path):
    """At a million items the file is 4.5 GB: a pass over every item (the evaluation's and
    the recommender's) used to keep all of it in the resident set."""
    n, V, D = 3000, 10, 384   # 23 MB of float16: rows of 7.7 kB, each on its own pages
    g = torch.Generator().manual_seed(0)
    ids = [f"i{k}" for k in range(n)]
    store.save(tmp_path, "text", store.FeatureSet(ids, torch.randn(n, V, D, generator=g).half(),
                                                  torch.ones(n, V, dtype=torch.bool), {"model": "t"}))
    path = tmp_path / "text.safetensors"
    fs = store.load(tmp_path, "text")
    x, mask = align_features(fs, ids[::-1])
    cfg = load_config(overrides=dict(TINY, text_vectors=0))
    model = build(cfg, n, D, None).eval()
    model.set_features({"text": (x, mask)})
    size = n * V * D * 2
    with torch.no_grad():
        want = model.item_vectors(torch.arange(n + 1))["text"]   # one gather, no release
        assert mapped_rss(path) > 0.9 * size                      # the whole file is resident
        fs.release_pages()
        assert mapped_rss(path) < 0.05 * size
        got = model.all_item_vectors(chunk=500)["text"]          # reads all of it again
    assert mapped_rss(path) < 0.05 * size                          # ... and keeps none
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.equal(x[torch.arange(1, n + 1)], fs.vectors.flip(0))   # released pages read back


def test_evaluation_from_vectors_computed_once_equals_encoding_each_batch(trained):
    from core.evaluate import item_inputs, rank_cases
    model, cfg, ds = load_trained(trained, "msm4sr")
    with torch.no_grad():
        inputs = item_inputs(model.eval())
        table = model.table_from(inputs)
    assert torch.equal(table, model.item_table())
    cases = ds.test + ds.valid
    per_batch = rank_cases(model, cases, cfg.max_len, batch=64, table=table)   # histories re-encoded
    assert np.array_equal(rank_cases(model, cases, cfg.max_len, batch=64, inputs=inputs, table=table), per_batch)
    assert np.array_equal(rank_cases(model, cases, cfg.max_len, batch=64), per_batch)
