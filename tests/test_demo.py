"""The built-in demo: shipped assets, the shopper simulator, the demo workspace
and the shipped model."""
from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest

from core import demo
from core.demo_sim import read_items, simulate

ASSETS = demo.DEMO_ASSETS


def _table(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


@pytest.fixture(scope="module")
def items() -> list[dict]:
    return _table(ASSETS / "items.tsv")


@pytest.fixture(scope="module")
def interactions() -> list[dict]:
    return _table(ASSETS / "interactions.tsv")


# ---- shipped assets ---------------------------------------------------------------
def test_items_are_complete_and_images_load(items):
    from PIL import Image
    ids = [r["id"] for r in items]
    assert 300 <= len(ids) <= 400
    assert len(set(ids)) == len(ids)
    departments = {r["categories"].split("|")[0] for r in items}
    assert 10 <= len(departments) <= 15
    for r in items:
        assert r["title"] and r["text"] and r["source"].startswith("openclipart-svg:")
        assert len(r["categories"].split("|")) == 2
        assert r["image"] == f"images/{r['id']}.png"
        with Image.open(ASSETS / r["image"]) as im:
            im.load()
            assert im.size == (128, 128)
        tags = [t.rsplit(":", 1) for t in r["tags"].split("|")]
        assert len(tags) >= 2
        scores = [float(s) for _, s in tags]
        assert all(0 < s <= 1 for s in scores) and scores == sorted(scores, reverse=True)
        assert all(w.strip() for w, _ in tags)
    # no image without an item, and the folder stays small
    pngs = list((ASSETS / "images").glob("*.png"))
    assert {p.stem for p in pngs} == set(ids)
    total = sum(p.stat().st_size for p in ASSETS.rglob("*") if p.is_file())
    assert total < 6_000_000


def test_interactions_reference_items_in_time_order(items, interactions):
    ids = {r["id"] for r in items}
    per_user = defaultdict(list)
    for r in interactions:
        assert r["item"] in ids
        per_user[r["user"]].append((int(r["timestamp"]), r["item"]))
    assert 2000 <= len(per_user) <= 3000
    for seq in per_user.values():
        assert 8 <= len(seq) <= 60
        stamps = [t for t, _ in seq]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        assert len({i for _, i in seq}) == len(seq)   # nobody buys an item twice


def test_licence_is_documented():
    text = (ASSETS / "README.md").read_text()
    assert "public domain" in text.lower() and "openclipart-svg" in text
    assert "simulated" in text.lower()


# ---- simulator ----------------------------------------------------------------------
def test_simulator_is_deterministic_and_well_formed():
    its = read_items(ASSETS / "items.tsv")
    a = simulate(its, users=40, seed=3)
    b = simulate(its, users=40, seed=3)
    c = simulate(its, users=40, seed=4)
    assert a == b
    assert a != c
    ids = {i.id for i in its}
    users = defaultdict(list)
    for u, i, t in a:
        assert i in ids
        users[u].append(t)
    assert len(users) == 40
    for stamps in users.values():
        assert 8 <= len(stamps) <= 60 and stamps == sorted(stamps)


def test_shipped_interactions_are_the_documented_simulation(interactions):
    """interactions.tsv is exactly what scripts/simulate_shoppers.py makes (seed 7)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "simulate_shoppers", Path(__file__).resolve().parents[1] / "scripts" / "simulate_shoppers.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = simulate(read_items(ASSETS / "items.tsv"), users=mod.USERS, seed=mod.SEED)
    assert rows == [(r["user"], r["item"], int(r["timestamp"])) for r in interactions]


def test_simulated_sequences_carry_a_sequential_signal(interactions):
    """'Bought right after the previous item' must beat plain popularity, or a
    sequential model would have nothing to show."""
    from collections import Counter
    seqs = defaultdict(list)
    for r in interactions:
        seqs[r["user"]].append(r["item"])
    pop, after = Counter(), defaultdict(Counter)
    for s in seqs.values():
        pop.update(s[:-1])
        for x, y in zip(s[:-2], s[1:-1]):
            after[x][y] += 1
    top = {i for i, _ in pop.most_common(10)}
    hit_pop = sum(s[-1] in top for s in seqs.values())
    hit_seq = sum(s[-1] in {i for i, _ in after[s[-2]].most_common(10)} for s in seqs.values())
    assert hit_seq > 1.5 * hit_pop


# ---- the demo workspace -----------------------------------------------------------------
def test_demo_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MSM4SR_DEMO_DIR", str(tmp_path / "d"))
    assert demo.demo_dir() == tmp_path / "d"
    monkeypatch.delenv("MSM4SR_DEMO_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert demo.demo_dir() == tmp_path / "xdg" / "msm4sr-studio" / "demo"


def test_fingerprint_changes_with_the_assets(tmp_path):
    import shutil
    copy = tmp_path / "assets"
    shutil.copytree(ASSETS, copy)
    before = demo.assets_fingerprint(copy)
    assert before == demo.assets_fingerprint(ASSETS)
    with open(copy / "interactions.tsv", "a") as f:
        f.write("u9999\tan-apple\t1800000000\n")
    assert demo.assets_fingerprint(copy) != before


@pytest.fixture(scope="module")
def demo_ws(built_demo):
    """The session's demo workspace, with MSM4SR_DEMO_DIR pointing at it for this module."""
    path, _ = built_demo
    mp = pytest.MonkeyPatch()
    mp.setenv("MSM4SR_DEMO_DIR", str(path))
    yield path
    mp.undo()


def test_demo_workspace_is_built(demo_ws, items, interactions):
    from core.features import store
    from core.workspace import Workspace
    path = demo_ws
    assert path == demo.demo_dir() and demo.is_demo(path)
    with Workspace.open(path) as ws:
        counts = ws.counts()
        assert counts["items"] == len(items)
        assert counts["interactions"] == len(interactions)
        assert counts["users"] == len({r["user"] for r in interactions})
        assert counts["items_with_image"] == len(items)
        # image keywords are the catalog's tags, labelled as such: never CLIP output
        assert ws.keyword_sources() == {"catalog-tags": len(items)}
        row = next(r for r in items if r["id"] == "an-apple")
        words = [k.word for k in ws.keywords("an-apple")["catalog-tags"]]
        assert words == [t.rsplit(":", 1)[0] for t in row["tags"].split("|")]
        for m in ("text", "image"):
            fs = store.load(ws.features_dir, m)
            assert fs is not None and sorted(fs.ids) == sorted(r["id"] for r in items)
            assert bool(fs.mask.any(dim=1).all())
        assert store.load(ws.features_dir, "image").meta["source"] == "catalog-tags"
        # images are stored relative to the workspace and exist there
        for it in ws.items():
            assert not Path(it.image).is_absolute()
            assert ws.image_path(it).is_file()
        seq = ws.load_sequence(demo.DEMO_SEQUENCE)
        assert 4 <= len(seq) <= 8 and all(ws.item(i) for i in seq)
        info = ws.get_meta("demo")
        assert info["fingerprint"] == demo.assets_fingerprint() and info["simulated"] is True


def test_second_call_reuses_the_workspace_and_changes_nothing(demo_ws, monkeypatch):
    """Up to date: nothing is built again and no file is touched (bench/bench_demo.py times it)."""
    from core.workspace import DB_NAME
    path = demo_ws
    builds = []
    real = demo.build_demo_workspace
    monkeypatch.setattr(demo, "build_demo_workspace", lambda *a, **k: builds.append(a) or real(*a, **k))
    files = {p: p.stat().st_mtime_ns for p in path.rglob("*") if p.is_file()
             and not p.name.endswith(("-wal", "-shm"))}   # SQLite's own scratch files
    again = demo.ensure_demo_workspace()
    assert again == path and builds == []
    db = path / DB_NAME
    assert db.stat().st_mtime_ns == files[db]
    assert {p: p.stat().st_mtime_ns for p in files} == files


def test_is_demo_is_false_for_other_folders(tmp_path, workspace):
    assert not demo.is_demo(tmp_path / "nothing")
    assert not demo.is_demo(workspace.path)


# ---- the shipped model ----------------------------------------------------------------
def test_shipped_model_is_in_the_checkout():
    """trained_models/demo is committed: its absence is a failure, never a skip."""
    for name in ("manifest.json", "weights.safetensors"):
        assert (demo.DEMO_MODEL / name).is_file(), f"{demo.DEMO_MODEL / name} is missing from the checkout"


def test_shipped_model_loads_and_recommends(demo_ws):
    from core.recommend import Recommender
    from core.workspace import Workspace
    path = demo_ws
    with Workspace.open(path) as ws:
        rec = Recommender.load(demo.DEMO_MODEL, ws)
        seq = ws.load_sequence(demo.DEMO_SEQUENCE)
        top = rec.recommend(seq, k=10, exclude=seq)
        ids = set(ws.item_ids())
        assert len(top) == 10 and all(i in ids and i not in seq for i, _ in top)
        scores = [s for _, s in top]
        assert scores == sorted(scores, reverse=True)


def test_shipped_model_beats_popularity(demo_ws):
    """On the demo's held-out last purchases the model must rank better than
    'the most bought items' (computed here, not read from metrics.json)."""
    import numpy as np
    from core.cli_model import evaluate_checkpoint
    from core.data import load_dataset
    from core.config import from_dict
    from core.checkpoint import read_manifest
    from core.evaluate import metrics_from_ranks
    from core.workspace import Workspace
    path = demo_ws
    with Workspace.open(path) as ws:
        got = evaluate_checkpoint(ws, demo.DEMO_MODEL, device="cpu")
        _, manifest = read_manifest(demo.DEMO_MODEL)
        ds = load_dataset(ws, from_dict(manifest["config"]), item_ids=manifest["item_ids"])
    counts = np.zeros(ds.n_items + 1, dtype=np.int64)
    for s in ds.train:
        np.add.at(counts, np.asarray(s), 1)
    counts = counts[1:]
    # ranked as the model is: (items above, other items tied), ties broken at random
    pop = metrics_from_ranks(np.array([[int((counts > counts[t - 1]).sum()),
                                        int((counts == counts[t - 1]).sum()) - 1] for _, t in ds.test]))
    assert got["test"]["recall@10"] > pop["recall@10"]
    assert got["test"]["ndcg@10"] > pop["ndcg@10"]


def test_shipped_model_attends_to_some_items_more_than_others(demo_ws):
    """A collapsed transformer (every attention row 1/n) is a mean-pooler and the app's
    attention view shows nothing; the shipped model's rows must depart from uniform."""
    from core import checkpoint
    from core.data import load_dataset
    from core.evaluate import attention_gap
    from core.workspace import Workspace
    path = demo_ws
    model, cfg, manifest, _ = checkpoint.load_model(demo.DEMO_MODEL)
    with Workspace.open(path) as ws:
        ds = load_dataset(ws, cfg, item_ids=manifest["item_ids"])
    model.set_features(ds.features)
    gap = attention_gap(model, ds.test, cfg.max_len)
    assert gap > 0.05, gap
    # and the layers and heads do not all look alike
    import torch
    from core.data import left_pad
    inp = torch.from_numpy(left_pad([h for h, _ in ds.test[:200]], cfg.max_len))
    with torch.no_grad():
        maps = torch.stack(model.attention(inp))               # [layers, B, heads, L, L]
    flat = maps.permute(0, 2, 1, 3, 4).reshape(cfg.layers * cfg.heads, -1)
    assert torch.cdist(flat, flat).triu(1).max() > 0.1 * flat.norm(dim=1).mean()


def test_nothing_is_written_outside_the_demo_dir(built_demo):
    """The build happens in a temporary sibling that is renamed into place, and nothing goes
    to the user's data folder ($XDG_DATA_HOME was set, and stayed empty)."""
    path, xdg = built_demo
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert list(xdg.iterdir()) == []
