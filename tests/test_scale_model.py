"""Large-catalog paths on real small models: ranks scored in item chunks, the sampled
softmax with logQ correction, and MSM4SR steps that encode only the items they need."""
import numpy as np
import pytest
import torch

from core import checkpoint
from core.config import load_config
from core.data import load_dataset
from core.evaluate import rank_cases
from core.model.sampled import NegativeSampler, sampled_cross_entropy, use_sampled
from core.train import train
from model_fixtures import TINY, load_trained, make_workspace, shared_trained

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def trained(ml1m, tmp_path_factory):
    return shared_trained(tmp_path_factory.mktemp("models"), ml1m)



@pytest.mark.parametrize("kind", ["msm4sr", "sasrec"])
def test_ranks_in_item_chunks_equal_one_product(trained, kind):
    model, cfg, ds = load_trained(trained, kind)
    cases = ds.test + ds.valid
    for mask in (False, True):
        whole = rank_cases(model, cases, cfg.max_len, batch=64, mask_history=mask)
        for width in (1, 7, 100):
            parts = rank_cases(model, cases, cfg.max_len, batch=64, mask_history=mask, item_chunk=width)
            assert np.array_equal(parts, whole), (mask, width)
    cold = rank_cases(model, ds.cold, cfg.max_len, candidates=ds.cold_items)
    assert np.array_equal(rank_cases(model, ds.cold, cfg.max_len, candidates=ds.cold_items, item_chunk=3), cold)


def test_chunked_ranks_keep_exact_ties(trained):
    model, cfg, ds = load_trained(trained, "sasrec")
    tied = sorted({t for _, t in ds.test[:5]} | set(range(1, 400, 10)))
    with torch.no_grad():   # these items share one vector: their scores tie across chunks
        model.item_emb.weight[tied] = model.item_emb.weight[tied[0]].clone()
    cases = ds.test[:20]
    whole = rank_cases(model, cases, cfg.max_len)
    assert whole[:5, 1].min() >= len(tied) - 1            # the tie is seen at all
    assert np.array_equal(rank_cases(model, cases, cfg.max_len, item_chunk=9), whole)


def test_inclusion_probabilities_match_the_draws():
    counts = np.array([0, 50, 20, 5, 1, 0, 0, 3, 9, 12], dtype=np.int64)
    y = torch.tensor([1, 1, 2, 8])
    for mode in ("uniform", "popularity"):
        s = NegativeSampler(counts, n=3, mode=mode)
        cand, label, log_incl = s.candidates(y, torch.Generator().manual_seed(0))
        assert torch.equal(cand[label], y)                          # each target is a candidate
        # the empirical chance that an item enters the set, when targets are drawn from
        # the training target distribution and negatives from q, matches pi_j
        g = torch.Generator().manual_seed(1)
        hits, trials = np.zeros(len(counts)), 4000
        for _ in range(trials):
            yy = torch.multinomial(s.f, 4, replacement=True, generator=g) + 1
            c, _, li = s.candidates(yy, g)
            hits[c.numpy()] += 1
        want = np.zeros(len(counts))
        c_all = torch.arange(1, len(counts))
        r = c_all - 1
        want[1:] = 1 - np.exp((4 * s._log1m_f[r] + 3 * s._log1m_q[r]).numpy())
        assert np.allclose(hits[1:] / trials, want[1:], atol=0.03), mode


def test_sampled_loss_equals_the_full_softmax_when_every_item_is_a_candidate():
    g = torch.Generator().manual_seed(0)
    user, items = torch.randn(6, 8, generator=g), torch.randn(30, 8, generator=g)
    label = torch.tensor([0, 3, 3, 7, 29, 11])
    full = torch.nn.functional.cross_entropy(user @ items.T, label)
    # pi = 1 for every candidate: no correction
    assert torch.allclose(sampled_cross_entropy(user, label, items, torch.zeros(30)), full)
    # one query, the other items kept with chance 1/2 and corrected by log 1/2: the partition
    # function the loss implies, exp(loss + s_pos), is unbiased (Horvitz-Thompson)
    u, pos = user[:1], 3
    z_full = torch.logsumexp(u @ items.T, 1).exp()
    est = []
    for _ in range(4000):
        keep = torch.rand(30, generator=g) < 0.5
        keep[pos] = True
        sub = keep.nonzero().squeeze(1)
        lab = (sub == pos).nonzero().squeeze(1)
        loss = sampled_cross_entropy(u, lab, items[sub], torch.full((len(sub),), float(np.log(0.5))))
        est.append(torch.exp(loss + u @ items[pos]))
    assert float(torch.stack(est).mean()) == pytest.approx(float(z_full), rel=0.05)
    # without the correction the estimate is about half: the correction is what makes it right
    plain = sampled_cross_entropy(u, torch.tensor([0]), items[[pos] + list(range(0, 30, 2))][:16],
                                  torch.zeros(16))
    assert float(torch.exp(plain + u @ items[pos])) < float(z_full)


def test_auto_switches_to_sampled_above_the_threshold():
    cfg = load_config(overrides={"full_softmax_max_items": 100})
    assert not use_sampled(cfg, 100) and use_sampled(cfg, 101)
    assert use_sampled(load_config(overrides={"softmax": "sampled"}), 10)
    assert not use_sampled(load_config(overrides={"softmax": "full"}), 10 ** 7)


@pytest.mark.parametrize("model,epochs", [("msm4sr", 3), ("sasrec", 8)])
def test_sampled_softmax_trains(ml1m, tmp_path, model, epochs):
    ws = make_workspace(tmp_path / "ws", ml1m, users=100, image=model == "msm4sr")
    base = dict(TINY, model=model, pretrain=False, finetune_epochs=epochs, sampled_negatives=200, patience=0)
    runs = {}
    for soft in ("full", "sampled"):
        cfg = load_config(overrides=dict(base, softmax=soft))
        runs[soft] = train(ws, cfg, "finetune", run=f"{model}-{soft}")
    sampled, full = runs["sampled"].metrics["test"], runs["full"].metrics["test"]
    n_items = len(ws.items())
    assert sampled["recall@50"] > 2 * 50 / n_items          # learned something
    assert sampled["recall@50"] > 0.5 * full["recall@50"]
    _, manifest = checkpoint.read_manifest(runs["sampled"].model_dir)
    assert manifest["config"]["softmax"] == "sampled"


def test_msm4sr_sampled_step_encodes_only_the_items_it_needs(ml1m, tmp_path):
    ws = make_workspace(tmp_path / "ws", ml1m, users=60)
    cfg = load_config(overrides=dict(TINY, softmax="sampled", sampled_negatives=50))
    from core.model import build
    ds = load_dataset(ws, cfg)
    dims = ds.dims()
    model = build(cfg, ds.n_items, dims["text"], dims.get("image"))
    model.set_features(ds.features)
    model.use_ids = True
    model.sampler = NegativeSampler.for_dataset(ds.train, ds.n_items, 50)
    rows = []
    model.mods["text"]["pool"].register_forward_hook(lambda m, a, out: rows.append(a[0].shape[0]))
    inp = torch.tensor([[0, 0, 3, 5, 9, 2], [4, 4, 8, 1, 6, 7]])
    tgt = torch.tensor([[0, 0, 5, 9, 2, 11], [4, 8, 1, 6, 7, 12]])
    loss, _ = model.loss(inp, tgt, "finetune", torch.Generator().manual_seed(0))
    loss.backward()
    need = len(torch.unique(torch.cat([inp.flatten(), tgt.flatten()])))
    assert rows and rows[0] <= need + 50 and rows[0] < ds.n_items + 1
    assert torch.isfinite(loss)
    rows.clear()
    cfg_full = load_config(overrides=dict(TINY, softmax="full"))
    model.cfg = cfg_full
    model.loss(inp, tgt, "finetune", torch.Generator().manual_seed(0))
    assert rows[0] == ds.n_items + 1                          # the full softmax encodes them all


def test_sampled_softmax_in_two_processes_matches_one(ml1m, tmp_path):
    """Every rank draws the same negatives (same seeded generator, gathered targets), so the
    sharded sampled loss is the global batch's, as in one process."""
    import json
    import os
    import sys
    from pathlib import Path

    import procs
    ws = make_workspace(tmp_path / "ws", ml1m, users=40)
    sets = dict(TINY, finetune_batch=47, dropout=0.0, attn_dropout=0.0, adaptor_dropout=0.0,
                finetune_epochs=2, softmax="sampled", sampled_negatives=100, negative_sampler="popularity")
    repo = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "core.cli", "--", "finetune", str(ws.path), "--run", "ddp", "--progress-json",
           *[f"--set={k}={v}" for k, v in sets.items()]]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(repo))
    r = procs.run(cmd, cwd=repo, env=env, seconds=240)
    two = {(e["epoch"], e["step"]): e["loss"] for x in r.stdout.splitlines() if x.startswith("{")
           for e in [json.loads(x)] if e["event"] == "step"}
    one_events = []
    train(ws, load_config(overrides=sets), "finetune", run="one", on_event=one_events.append)
    one = {(e["epoch"], e["step"]): e["loss"] for e in one_events if e["event"] == "step"}
    common = sorted(set(one) & set(two))
    assert len(common) >= 2
    for k in common:
        assert two[k] == pytest.approx(one[k], rel=1e-4), k


def test_large_catalog_item_vectors_are_cached_per_weights_and_features(trained, monkeypatch):
    from core import recommend
    from core.features import store
    monkeypatch.setattr(recommend, "CACHE_MIN_ITEMS", 1)
    ws = trained["ws"]
    path = trained["msm4sr"].model_dir
    calls = []
    from core.model.msm4sr import MSM4SR
    real = MSM4SR.all_item_vectors
    monkeypatch.setattr(MSM4SR, "all_item_vectors", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    first = recommend.Recommender.load(path, ws)
    seq = [first.item_ids[k] for k in (3, 9, 27)]
    want = first.recommend(seq, k=10)
    assert len(calls) == 1
    cached = list((ws.path / "cache").glob("item-vectors-*.safetensors"))
    assert len(cached) == 1
    second = recommend.Recommender.load(path, ws)
    assert len(calls) == 1                          # read back, not computed
    assert second.recommend(seq, k=10) == want
    cached[0].write_bytes(cached[0].read_bytes()[:100])   # torn: computed again
    recommend.Recommender.load(path, ws)
    assert len(calls) == 2
    # a rebuilt feature file (atomic write: new inode) gets new vectors
    fs = store.load(ws.features_dir, "text")
    store.save(ws.features_dir, "text", store.FeatureSet(fs.ids, fs.vectors.clone(), fs.mask, fs.meta))
    recommend.Recommender.load(path, ws)
    assert len(calls) == 3
    for p in (ws.path / "cache").glob("item-vectors-*"):
        p.unlink()
