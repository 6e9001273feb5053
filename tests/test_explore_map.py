"""The item map on real tiny trained models: projection quality, the per-model cache,
the CSV/PNG outputs and the command line."""
import csv
import json
import shutil

import numpy as np
import pytest

from core.cli import main
from core.explore import map as mapmod
from core.explore.items import model_items
from core.recommend import Recommender
from core.workspace import Workspace
from model_fixtures import shared_trained

pytestmark = pytest.mark.realdata      # ../shared/datasets


@pytest.fixture(scope="module")
def trained(ml1m, tmp_path_factory):
    return shared_trained(tmp_path_factory.mktemp("models"), ml1m)


@pytest.fixture
def ws_copy(trained, tmp_path):
    """A private copy of the shared workspace, so cache files stay in this test."""
    shutil.copytree(trained["ws"].path, tmp_path / "ws")
    ws = Workspace.open(tmp_path / "ws")
    yield ws
    ws.close()


def _neighbour_vs_random(vecs: np.ndarray, xy: np.ndarray) -> tuple[float, float]:
    """Mean map distance to each item's cosine-nearest neighbour, and between random pairs."""
    v = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    cos = v @ v.T
    np.fill_diagonal(cos, -np.inf)
    nn = cos.argmax(1)
    near = np.linalg.norm(xy - xy[nn], axis=1).mean()
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(xy), 2000), rng.integers(0, len(xy), 2000)
    return float(near), float(np.linalg.norm(xy[a] - xy[b], axis=1).mean())


def test_pca_matches_sklearn_up_to_sign():
    from sklearn.decomposition import PCA
    x = np.random.default_rng(1).standard_normal((300, 16)) * np.linspace(3, 0.1, 16)
    ours = mapmod.pca_2d(x)
    ref = PCA(2).fit_transform(x)
    assert np.allclose(np.abs(ours), np.abs(ref), atol=1e-4)
    # signs follow the axes, not the solver: the same axes for reordered rows
    assert np.allclose(mapmod.pca_2d(x[::-1]), ours[::-1], atol=1e-4)


@pytest.mark.parametrize("kind", ["msm4sr", "sasrec"])
def test_map_keeps_model_neighbours_close(trained, ws_copy, kind):
    rec = Recommender.load(trained[kind].model_dir, ws_copy)
    m = mapmod.item_map(ws_copy, rec, "pca")
    ids, table = model_items(rec)
    assert m.ids == ids and m.xy.shape == (len(ids), 2) and np.isfinite(m.xy).all()
    near, rand = _neighbour_vs_random(table.numpy(), m.xy)
    assert near < 0.8 * rand


def test_second_call_reads_the_cache_instead_of_recomputing(trained, ws_copy):
    rec = Recommender.load(trained["msm4sr"].model_dir, ws_copy)
    before = mapmod.computed["count"]
    first = mapmod.item_map(ws_copy, rec, "pca")
    assert not first.cached and first.path.is_file() and first.path.parent == ws_copy.path / "explore"
    assert mapmod.computed["count"] == before + 1
    stamp = first.path.stat().st_mtime_ns
    again = mapmod.item_map(ws_copy, Recommender.load(trained["msm4sr"].model_dir, ws_copy), "pca")
    assert again.cached and mapmod.computed["count"] == before + 1
    assert again.path == first.path and again.path.stat().st_mtime_ns == stamp
    assert np.array_equal(again.xy, first.xy)
    # another model has other weights: its own cache entry
    other = mapmod.item_map(ws_copy, Recommender.load(trained["sasrec"].model_dir, ws_copy), "pca")
    assert not other.cached and other.path != first.path
    # refresh recomputes; a torn cache file is recomputed and rewritten, never trusted
    assert not mapmod.item_map(ws_copy, rec, "pca", refresh=True).cached
    first.path.write_bytes(first.path.read_bytes()[:40])
    torn = mapmod.item_map(ws_copy, rec, "pca")
    assert not torn.cached and np.allclose(torn.xy, first.xy)
    assert mapmod.item_map(ws_copy, rec, "pca").cached


def test_auto_picks_pca_for_large_catalogs_and_rejects_bad_methods():
    assert mapmod.resolve_method("auto", mapmod.UMAP_AUTO_MAX + 1) == "pca"
    assert mapmod.resolve_method("umap", 5) == "pca"          # too few for a neighbourhood
    assert mapmod.resolve_method("auto", 1000) == ("umap" if mapmod.umap_available() else "pca")
    with pytest.raises(Exception, match="tsne"):
        mapmod.resolve_method("tsne", 10)


@pytest.mark.slow
def test_umap_map_keeps_neighbours_closer_than_pca(trained, ws_copy):
    pytest.importorskip("umap")
    rec = Recommender.load(trained["msm4sr"].model_dir, ws_copy)
    _, table = model_items(rec)
    u = mapmod.item_map(ws_copy, rec, "umap", seed=0)
    p = mapmod.item_map(ws_copy, rec, "pca")
    assert u.method == "umap" and u.path != p.path and np.isfinite(u.xy).all()
    un, ur = _neighbour_vs_random(table.numpy(), u.xy)
    pn, pr = _neighbour_vs_random(table.numpy(), p.xy)
    assert un / ur < 0.5 and un / ur < pn / pr


def test_cli_writes_csv_png_and_json(trained, ws_copy, tmp_path, capsys):
    from PIL import Image
    model = str(trained["msm4sr"].model_dir)
    out, png = tmp_path / "map.csv", tmp_path / "map.png"
    assert main(["map", str(ws_copy.path), "--model", model, "--out", str(out), "--png", str(png),
                 "--method", "pca", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["method"] == "pca" and not info["cached"]
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["item_id", "x", "y", "title", "cold", "new", "popularity", "category"]
    pop = ws_copy.popularity()
    items = {i.id: i for i in ws_copy.items()}
    assert len(rows) == info["items"] == len(items)
    for r in rows:
        it = items[r["item_id"]]
        assert r["title"] == it.title and int(r["cold"]) == it.cold
        assert int(r["popularity"]) == pop.get(it.id, 0)
        assert r["category"] == it.categories.split("|")[0]
    img = Image.open(png)
    assert img.size == (1000, 1000)
    colours = {c for _, c in img.getcolors(1 << 20)}
    assert len(colours) > 5            # categories are drawn in their own colours
    # second run: from the cache; colour by popularity; a missing model is an error naming it
    assert main(["map", str(ws_copy.path), "--model", model, "--out", str(out), "--method", "pca",
                 "--png", str(png), "--colour", "popularity", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cached"] is True
    assert main(["map", str(ws_copy.path), "--model", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "nope" in capsys.readouterr().err


def _new_item_with_features(ws, title, twin):
    """Add an is_new item whose feature rows copy those of catalog item `twin`."""
    import torch
    from core.features import store
    item = ws.add_new_item(title)
    for mod in store.MODALITIES:
        fs = store.load(ws.features_dir, mod)
        k = fs.index()[twin]
        store.save(ws.features_dir, mod, store.FeatureSet(
            fs.ids + [item.id], torch.cat([fs.vectors, fs.vectors[k:k + 1]]),
            torch.cat([fs.mask, fs.mask[k:k + 1]]), fs.meta))
    return item


def test_new_items_are_mapped_and_get_their_own_cache_entry(trained, ws_copy, tmp_path):
    model = trained["msm4sr"].model_dir
    before = mapmod.item_map(ws_copy, Recommender.load(model, ws_copy), "pca")
    item = _new_item_with_features(ws_copy, "A new film", ws_copy.item_ids()[3])
    rec = Recommender.load(model, ws_copy)
    after = mapmod.item_map(ws_copy, rec, "pca")
    assert not after.cached and after.path != before.path
    assert after.ids == before.ids + [item.id]
    rows = {r["item_id"]: r for r in mapmod.map_rows(ws_copy, after)}
    assert rows[item.id]["new"] == 1 and rows[item.id]["title"] == "A new film"
    # SASRec cannot represent new items: its map is the catalog only
    sas = mapmod.item_map(ws_copy, Recommender.load(trained["sasrec"].model_dir, ws_copy), "pca")
    assert item.id not in sas.ids
