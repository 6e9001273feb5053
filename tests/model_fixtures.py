"""Small real workspaces for the model tests: the first users of ml-1m-posters,
with feature vectors made here (fast), never copied into the repository."""
from __future__ import annotations

import csv
from pathlib import Path

import torch

from core.features import store
from core.splits import choose_cold
from core.workspace import Item, Workspace


def read_ml1m(root: Path, users: int):
    rows, seen = [], set()
    with open(root / "interactions.tsv", newline="") as f:
        r = csv.reader(f, delimiter="\t")
        next(r)
        for u, i, t in r:
            if u not in seen:
                if len(seen) == users:
                    continue
                seen.add(u)
            rows.append((u, i, int(t)))
    titles = {}
    with open(root / "movies.dat", encoding="latin-1") as f:
        for line in f:
            mid, title, genres = line.rstrip("\n").split("::")
            titles[mid] = (title, genres)
    return rows, titles


def make_workspace(path: Path, root: Path, users: int = 200, cold_share: float = 0.05,
                   dim: int = 32, vectors: int = 3, image: bool = True, seed: int = 0,
                   no_image_share: float = 0.05) -> Workspace:
    """A workspace of the first `users` users, with text (and image) features.

    Features: each item gets a random 'content' vector; its text vectors are that
    plus genre directions plus noise, its image vectors another noisy view, so
    the two modalities agree the way real ones roughly do. A few items have no image.
    """
    rows, titles = read_ml1m(root, users)
    ids = sorted({i for _, i, _ in rows})
    cold = set(choose_cold(ids, cold_share, seed=seed))
    ws = Workspace.create(path)
    with ws.transaction() as db:
        ws.upsert_items([Item(id=i, title=titles.get(i, ("?", ""))[0], categories=titles.get(i, ("", ""))[1],
                              cold=i in cold) for i in ids], db)
        ws.add_interactions(rows, db)
    g = torch.Generator().manual_seed(seed)
    genres = sorted({x for i in ids for x in titles.get(i, ("", ""))[1].split("|") if x})
    gvec = torch.randn(len(genres), dim, generator=g)
    base = torch.randn(len(ids), dim, generator=g)
    for k, i in enumerate(ids):
        for x in titles.get(i, ("", ""))[1].split("|"):
            if x:
                base[k] += gvec[genres.index(x)]
    text = base[:, None, :] + 0.3 * torch.randn(len(ids), vectors, dim, generator=g)
    tmask = torch.ones(len(ids), vectors, dtype=torch.bool)
    tmask[:, -1] = torch.rand(len(ids), generator=g) > 0.5  # some items have fewer vectors
    store.save(ws.features_dir, "text", store.FeatureSet(ids, text.half(), tmask, {"model": "test-text"}))
    if image:
        img = base[:, None, :] + 0.8 * torch.randn(len(ids), vectors, dim, generator=g)
        imask = torch.ones(len(ids), vectors, dtype=torch.bool)
        imask[torch.rand(len(ids), generator=g) < no_image_share] = False  # no image at all
        store.save(ws.features_dir, "image", store.FeatureSet(
            ids, img.half(), imask, {"model": "test-text", "source": "catalog-tags", "keywords": vectors}))
    return ws


# eval_share 0: pre-training validates on eval_every alone, not on the clock, so tests that
# compare two runs (resume, kill, torchrun) keep the same epochs
TINY = {"hidden": 32, "inner": 64, "max_len": 20, "experts": 2, "pool_dim": 16,
        "pretrain_batch": 64, "finetune_batch": 64, "eval_batch": 128, "threads": 1,
        "eval_share": 0.0}


_CACHE: dict = {}


def shared_trained(tmp_root: Path, root: Path) -> dict:
    """One small workspace and tiny trained models (msm4sr pre-train+fine-tune, sasrec),
    made once per test session and shared by the model test modules. Do not modify them."""
    if "ws" not in _CACHE:
        from core.config import load_config
        from core.train import train
        ws = make_workspace(tmp_root / "shared-ws", root, users=80)
        out = {"ws": ws}
        for model in ("msm4sr", "sasrec"):
            cfg = load_config(overrides=dict(TINY, model=model, pretrain_epochs=2, finetune_epochs=4,
                                             finetune_lr=1e-3))
            out[model] = train(ws, cfg, "train", run=model)
        _CACHE.update(out)
    return _CACHE


def load_trained(trained: dict, kind: str):
    """(model, config, dataset) of one of shared_trained's models, features attached."""
    from core import checkpoint
    from core.data import load_dataset
    model, cfg, _, _ = checkpoint.load_model(trained[kind].model_dir)
    ds = load_dataset(trained["ws"], cfg)
    if kind == "msm4sr":
        model.set_features(ds.features)
    return model, cfg, ds
