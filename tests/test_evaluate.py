"""Full-ranking evaluation against a brute-force reference, history masking, cold-start protocol."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core import checkpoint
from core.config import load_config
from core.data import left_pad, load_dataset
from core.evaluate import evaluate, metrics_from_ranks, popularity_ranks, rank_cases
from model_fixtures import load_trained, shared_trained

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(ml1m, tmp_path_factory):
    return shared_trained(tmp_path_factory.mktemp("models"), ml1m)



def test_ties_count_as_a_random_tie_break_in_expectation():
    rng = np.random.default_rng(0)
    pairs = np.array([[0, 0], [0, 4], [3, 20], [8, 5], [12, 3], [0, 3415]])
    got = metrics_from_ranks(pairs)
    # brute force: break each case's ties uniformly at random, many times
    sims = [metrics_from_ranks(pairs[:, 0] + rng.integers(0, pairs[:, 1] + 1)) for _ in range(20000)]
    for key in ("recall@10", "ndcg@10", "mrr@10", "recall@5", "ndcg@50"):
        assert got[key] == pytest.approx(np.mean([m[key] for m in sims]), abs=4e-3), key
    # exact values of simple cases: a tie of 5 over places 0..4 is a hit at 5 with certainty
    assert metrics_from_ranks(np.array([[0, 4]]), ks=(5,))["recall@5"] == 1.0
    assert metrics_from_ranks(np.array([[8, 3]]), ks=(10,))["recall@10"] == pytest.approx(0.5)
    assert metrics_from_ranks(np.array([[0, 3415]]), ks=(10,))["recall@10"] == pytest.approx(10 / 3416)


@pytest.mark.realdata
def test_a_model_that_scores_every_item_the_same_gets_chance(trained):
    model, cfg, ds = load_trained(trained, "sasrec")
    with torch.no_grad():
        model.item_emb.weight.zero_()             # every item scores 0: all tied
    ranks = rank_cases(model, ds.test, cfg.max_len)
    n = model.n_items
    assert np.all(ranks[:, 0] == 0) and np.all(ranks[:, 1] == n - 1)
    m = metrics_from_ranks(ranks)
    assert m["recall@10"] == pytest.approx(10 / n) and m["ndcg@10"] < 0.01
    # NaN scores never help: a NaN target ranks below every item
    with torch.no_grad():
        model.item_emb.weight.fill_(float("nan"))
    assert metrics_from_ranks(rank_cases(model, ds.test, cfg.max_len))["recall@50"] == 0.0


@pytest.mark.realdata
def test_scores_are_float32_even_under_autocast(trained):
    model, cfg, ds = load_trained(trained, "msm4sr")
    plain = rank_cases(model, ds.test, cfg.max_len)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16   # autocast is on
        under = rank_cases(model, ds.test, cfg.max_len)
    assert np.array_equal(plain, under)


def test_metrics_from_ranks_follow_their_definitions():
    ranks = np.array([0, 3, 9, 10, 60])
    m = metrics_from_ranks(ranks, ks=(10,))
    assert m["recall@10"] == pytest.approx(3 / 5)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / np.log2(5) + 1 / np.log2(11)) / 5)
    assert m["mrr@10"] == pytest.approx((1 + 1 / 4 + 1 / 10) / 5)
    assert m["cases"] == 5


@pytest.mark.realdata
@pytest.mark.parametrize("kind", ["msm4sr", "sasrec"])
def test_batched_ranks_equal_a_brute_force_full_matrix(trained, kind):
    model, cfg, ds = load_trained(trained, kind)
    cases = ds.test
    with torch.no_grad():
        model.eval()
        inp = torch.from_numpy(left_pad([h for h, _ in cases], cfg.max_len))
        full = (model.user_vectors(inp) @ model.item_table().T).numpy()     # all users at once
    tgt = np.array([t for _, t in cases]) - 1
    want = np.array([(np.delete(row, t) > row[t]).sum() for row, t in zip(full, tgt)])
    for batch in (7, 512):
        r = rank_cases(model, cases, cfg.max_len, batch=batch)
        assert np.array_equal(r[:, 0], want) and not r[:, 1].any()   # float scores: no ties here
    # masking history can only move targets up, and does for some users here
    masked = rank_cases(model, cases, cfg.max_len, batch=16, mask_history=True)[:, 0]
    assert np.all(masked <= want) and np.any(masked < want)
    want_m = []
    for row, (h, t) in zip(full.copy(), cases):
        hist = [i - 1 for i in h[-cfg.max_len:] if i != t]
        row[hist] = -np.inf
        want_m.append((np.delete(row, t - 1) > row[t - 1]).sum())
    assert np.array_equal(masked, want_m)


@pytest.mark.realdata
def test_cold_start_ranks_among_held_out_items_only(trained):
    model, cfg, ds = load_trained(trained, "msm4sr")
    assert len(ds.cold) > 20 and len(ds.cold_items) > 5
    assert not ds.seen[ds.cold_items].any()                       # never in training sequences
    ranks = rank_cases(model, ds.cold, cfg.max_len, candidates=ds.cold_items)[:, 0]
    assert ranks.max() < len(ds.cold_items)
    with torch.no_grad():
        inp = torch.from_numpy(left_pad([h for h, _ in ds.cold], cfg.max_len))
        sub = (model.user_vectors(inp) @ model.item_table()[ds.cold_items - 1].T).numpy()
    pos = {int(i): c for c, i in enumerate(ds.cold_items)}
    want = [(np.delete(r, pos[t]) > r[pos[t]]).sum() for r, (_, t) in zip(sub, ds.cold)]
    assert np.array_equal(ranks, want)
    pop = popularity_ranks(ds, ds.cold)
    counts = trained["ws"].popularity()
    ids = ds.item_ids
    for (h, t), (above, tied) in zip(ds.cold, pop):
        others = [counts.get(ids[c - 1], 0) for c in ds.cold_items if c != t]
        assert above == sum(n > counts[ids[t - 1]] for n in others)
        assert tied == sum(n == counts[ids[t - 1]] for n in others)
    assert pop[:, 1].sum() > 0              # counts tie often: the tie rule matters here
    out = evaluate(model, ds, cfg.max_len)
    assert out["cold"]["candidates"] == len(ds.cold_items)
    assert out["cold"]["model"]["cases"] == out["cold"]["popularity"]["cases"] == len(ds.cold)
    assert "oracle" in out["cold"]["popularity_is"] and out["ties"].startswith("expected")


@pytest.mark.realdata
def test_trained_models_beat_chance(trained):
    for kind in ("msm4sr", "sasrec"):
        m = trained[kind].metrics["test"]
        chance = 50 / len(trained["ws"].item_ids())
        assert m["recall@50"] > 2 * chance, (kind, m)


@pytest.mark.realdata
def test_cli_evaluate_json_matches_the_trainer(trained):
    ws = trained["ws"]
    r = subprocess.run([sys.executable, "-m", "core.cli", "evaluate", str(ws.path), "--model",
                        str(trained["sasrec"].model_dir), "--json", "--device", "cpu"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["test"]["ndcg@10"] == pytest.approx(trained["sasrec"].metrics["test"]["ndcg@10"], abs=1e-6)
    assert out["mask_history"] is False and out["seconds"] > 0
    from core.cli_model import evaluate_checkpoint
    masked = evaluate_checkpoint(ws, trained["sasrec"].model_dir, mask_history=True, device="cpu")
    assert masked["mask_history"] is True
    assert masked["test"]["recall@50"] >= out["test"]["recall@50"]


@pytest.mark.realdata
def test_evaluate_refuses_a_changed_split(trained, tmp_path):
    import shutil
    from core.cli_model import evaluate_checkpoint
    from core.errors import CheckpointError
    from core.workspace import Workspace
    shutil.copytree(trained["ws"].path, tmp_path / "ws")
    with Workspace.open(tmp_path / "ws") as ws:
        seqs = ws.sequences()
        user = sorted(seqs)[0]
        warm = [i.id for i in ws.items() if not i.cold and i.id not in seqs[user]]
        with ws.transaction() as db:
            ws.add_interactions([(user, warm[0], 2_000_000_000)], db)  # a new last (test) item
        with pytest.raises(CheckpointError, match="dataset fingerprint"):
            evaluate_checkpoint(ws, trained["sasrec"].model_dir, device="cpu")
