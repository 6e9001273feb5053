"""The Recommender the app uses: load a trained model, check it against the
workspace, and score sequences of catalog items and new (cold-start) items.

Item vectors for the whole catalog are computed once at load, so a
recommendation after a sequence edit is one short transformer pass plus one
matrix-vector product.

New items (workspace items marked is_new, and `NewItem`s given by title/text/
image) are represented by their features only (no ID embedding): looked up in
the feature files, else computed with core.features.build.encode_items. With
MSM4SR they can be recommended too. SASRec cannot represent them: they are left
out of its input sequence (their attention rows/columns are zero) and never recommended.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core import checkpoint
from core.data import align_features, feature_identity
from core.errors import CheckpointError, InputError
from core.features import store
from core.workspace import Item, Workspace


CACHE_MIN_ITEMS = 20_000   # below this, computing the item vectors takes about a second


@dataclass(frozen=True)
class NewItem:
    """An item given only by its content (not stored in the workspace)."""
    title: str
    text: str = ""
    image: str | None = None
    categories: str = ""


class Recommender:
    def __init__(self, model, cfg, manifest: dict, folder, ws: Workspace, device: torch.device):
        self.model, self.cfg, self.manifest, self.folder = model, cfg, manifest, folder
        self.ws, self.device = ws, device
        self.item_ids: list[str] = list(manifest["item_ids"])
        self.index = {i: k + 1 for k, i in enumerate(self.item_ids)}
        self.is_content = manifest["model"] == "msm4sr"
        self._new_vecs: dict[str, dict[str, torch.Tensor]] = {}   # new item id -> modality -> [H]
        self._new_items: dict[NewItem, dict[str, torch.Tensor]] = {}
        with torch.no_grad():
            # input vectors of every item (row = model index), so a refresh skips the adaptors
            self.inputs = self._item_vectors() if self.is_content else None
            self.table = (model.table_from(self.inputs) if self.is_content
                          else model.item_table()).float().contiguous()   # [N, K]
        self.new_ids: list[str] = []
        self.new_table = self.table[:0]

    def _item_vectors(self) -> dict[str, torch.Tensor]:
        """Every item's vectors through pooling and the adaptors: minutes at a million items,
        so large catalogs keep them in WS/cache, keyed by the weights and the feature files."""
        path = _cache_path(self.ws, self.manifest) if len(self.item_ids) >= CACHE_MIN_ITEMS else None
        if path is not None:
            got = _read_cached(path, self.model.modalities, len(self.item_ids) + 1)
            if got is not None:
                return {m: v.to(self.device) for m, v in got.items()}
        vecs = self.model.all_item_vectors()
        if path is not None:
            _write_cached(path, vecs)
        return vecs

    # ---- loading ----------------------------------------------------------
    @classmethod
    def load(cls, path, ws: Workspace, device: str = "cpu") -> "Recommender":
        """Load a model folder (or its manifest.json); CheckpointError says why it is refused."""
        from core.train import pick_device
        dev = pick_device(device)
        model, cfg, manifest, folder = checkpoint.load_model(path, dev)
        items = ws.items()
        checkpoint.check_items(manifest, items)
        if manifest["model"] == "msm4sr":
            feats, idents = {}, {}
            for m in store.MODALITIES:
                fs = store.load(ws.features_dir, m)
                if fs is not None:
                    idents[m] = feature_identity(fs)
                    if m in manifest.get("modalities", []):
                        feats[m] = (fs, align_features(fs, manifest["item_ids"]))
            diffs = checkpoint.feature_differences(manifest, idents)
            if diffs:
                raise CheckpointError(f"{folder}: features do not match the workspace: " + "; ".join(diffs))
            model.set_features({m: v for m, (_, v) in feats.items()})
        rec = cls(model, cfg, manifest, folder, ws, dev)
        if rec.is_content:
            rec.add_new_items([i.id for i in items if i.is_new])
        return rec

    # ---- new items ----------------------------------------------------------
    def _encode(self, feats: dict) -> dict[str, torch.Tensor]:
        """modality -> (vectors [n,V,D], mask [n,V]) for the model's modalities -> modality -> [n, H]."""
        with torch.no_grad():
            return {m: v.float() for m, v in self.model.encode_features(
                {m: (x.to(self.device), k.to(self.device)) for m, (x, k) in feats.items()}).items()}

    def _features_of(self, items: list[Item]) -> dict:
        """Features of items: from the feature files where present, else computed."""
        ids = [i.id for i in items]
        out, todo, computed = {}, set(), {}
        for m in self.model.modalities:
            fs = store.load(self.ws.features_dir, m)
            where = fs.index() if fs is not None else {}
            todo |= {i for i in ids if i not in where}
            out[m] = fs
        if todo:
            from core.features.build import encode_items
            text_fs, image_fs = encode_items(self.ws, [i for i in items if i.id in todo])
            computed = {"text": text_fs, "image": image_fs}
        feats = {}
        for m in self.model.modalities:
            fs = out[m]
            have = [i for i in ids if fs is not None and i in fs.index()]
            parts = []
            if have:
                parts.append(fs)
            if computed.get(m) is not None:
                parts.append(computed[m])
            feats[m] = _gather(parts, ids, self.model, m)
        return feats

    def add_new_items(self, item_ids: list[str]) -> None:
        """Make workspace items marked is_new known (vectors from their features); idempotent."""
        items = [it for i in item_ids if i not in self._new_vecs and (it := self.ws.item(i)) is not None]
        if not items:
            return
        vecs = self._encode(self._features_of(items))
        for k, it in enumerate(items):
            self._new_vecs[it.id] = {m: v[k] for m, v in vecs.items()}
        self.new_ids = list(self._new_vecs)
        with torch.no_grad():
            self.new_table = self.model.vectors_to_table(
                {m: torch.stack([self._new_vecs[i][m] for i in self.new_ids]) for m in self.model.modalities}
            ).float()

    def _vectors_of_new_item(self, item: NewItem) -> dict[str, torch.Tensor]:
        if item not in self._new_items:
            tmp = Item(id=f"adhoc:{len(self._new_items)}", title=item.title, text=item.text,
                       image=item.image, categories=item.categories, is_new=True)
            from core.features.build import encode_items
            text_fs, image_fs = encode_items(self.ws, [tmp])
            fs = {"text": text_fs, "image": image_fs}
            feats = {m: _gather([fs[m]] if fs.get(m) is not None else [], [tmp.id], self.model, m)
                     for m in self.model.modalities}
            self._new_items[item] = {m: v[0] for m, v in self._encode(feats).items()}
        return self._new_items[item]

    # ---- sequences ----------------------------------------------------------
    def _input(self, sequence):
        """(inp [1, L] with -1 for new items, embedded sequence or None, kept positions, L)."""
        seq = list(sequence)[-self.cfg.max_len:]
        idx, extra, keep = [], [], []
        for pos, s in enumerate(seq):
            if isinstance(s, NewItem):
                vec = self._vectors_of_new_item(s) if self.is_content else None
            elif s in self.index:
                idx.append(self.index[s])
                extra.append(None)
                keep.append(pos)
                continue
            else:
                if self.ws.item(s) is None:
                    raise InputError(f"unknown item {s!r}: not in the model or the workspace")
                if self.is_content and s not in self._new_vecs:
                    self.add_new_items([s])
                vec = self._new_vecs.get(s)
            if vec is None:   # SASRec: no way to represent it
                continue
            idx.append(-1)
            extra.append(vec)
            keep.append(pos)
        inp = torch.tensor([idx], dtype=torch.long, device=self.device)
        emb = None
        if self.is_content and idx:
            emb = {m: self.inputs[m][inp.clamp(min=0)] for m in self.model.modalities}  # [1, L, H]
            for pos, e in enumerate(extra):
                if e is not None:   # new items: their content vectors
                    for m in emb:
                        emb[m][0, pos] = e[m]
        return inp, emb, keep, len(seq)

    @torch.no_grad()
    def recommend(self, sequence, k: int = 10, exclude=()) -> list[tuple[str, float]]:
        """Top-k (item id, score) for a sequence of catalog ids, new-item ids and NewItems.

        At a million items the product with the table is most of the time (it reads 256 MB):
        nothing else here touches N-sized data, and exclusions are looked up, not scanned."""
        inp, emb, _, _ = self._input(sequence)
        if inp.shape[1] == 0:
            return []
        with one_thread():
            user = (self.model.user_vectors_from(emb, inp == 0) if emb is not None
                    else self.model.user_vectors(inp)).float()[0]
        new_ids = self.new_ids if self.is_content and self.new_table is not None else []
        new_col = {i: c for c, i in enumerate(new_ids)}
        ban, ban_new = set(), set()
        for i in set(exclude):
            if isinstance(i, str) and i in self.index:
                ban.add(self.index[i] - 1)
            elif isinstance(i, str) and i in new_col:
                ban_new.add(new_col[i])
        out = _top(torch.mv(self.table, user), ban, k, self.item_ids)
        if new_ids:
            out = sorted(out + _top(torch.mv(self.new_table, user), ban_new, k, new_ids),
                         key=lambda p: -p[1])[:k]
        return out

    @torch.no_grad()
    def attention(self, sequence) -> list[np.ndarray]:
        """One [heads, L, L] array per layer, L = len(sequence) clipped to max_len."""
        inp, emb, keep, L = self._input(sequence)
        maps = []
        if not inp.shape[1]:
            weights = []
        else:
            with one_thread():
                weights = (self.model.attention_from(emb, inp == 0) if emb is not None
                           else self.model.attention(inp))
        for w in weights:
            full = np.zeros((w.shape[1], L, L), dtype=np.float32)
            if keep:
                sel = np.array(keep)
                full[:, sel[:, None], sel[None, :]] = w[0].float().cpu().numpy()
            maps.append(full)
        if not maps:
            maps = [np.zeros((self.cfg.heads, L, L), dtype=np.float32) for _ in range(self.cfg.layers)]
        return maps


def _top(scores: torch.Tensor, ban: set[int], k: int, ids: list[str]) -> list[tuple[str, float]]:
    """The k best (id, score) of `scores` [n], leaving out the columns in `ban`."""
    k = min(k, len(scores) - len(ban))
    if k <= 0:
        return []
    if ban:   # a fresh tensor: writing its few banned entries beats a mask over all n
        scores[torch.tensor(sorted(ban))] = float("-inf")
    vals, cols = torch.topk(scores, k)
    return [(ids[c], v) for c, v in zip(cols.tolist(), vals.tolist())]


class one_thread:
    """One intra-op thread for a single sequence's transformer pass: its ops are tiny, and
    on a loaded 2-core machine each hand-off to the other thread waited for the scheduler
    (about 3 ms an op, 20 ms a pass, against 0.5 ms on one thread)."""

    def __enter__(self):
        self.n = torch.get_num_threads()
        if self.n > 1:
            torch.set_num_threads(1)

    def __exit__(self, *exc):
        if self.n > 1:
            torch.set_num_threads(self.n)


def _gather(parts: list, ids: list[str], model, modality: str):
    """(vectors [n,V,D], mask [n,V]) for `ids` from the first FeatureSet that has each id."""
    dim = {"text": model.text_dim, "image": model.image_dim}[modality]
    V = max([fs.vectors.shape[1] for fs in parts] or [1])
    x = torch.zeros(len(ids), V, dim)
    m = torch.zeros(len(ids), V, dtype=torch.bool)
    indexes = [fs.index() for fs in parts]
    for r, i in enumerate(ids):
        for fs, where in zip(parts, indexes):
            if i in where:
                if fs.dim != dim:
                    raise CheckpointError(f"{modality} features of {i!r} have dim {fs.dim}, model needs {dim}")
                v = fs.vectors.shape[1]
                x[r, :v] = fs.vectors[where[i]].float()
                m[r, :v] = fs.mask[where[i]]
                break
    return x, m


def _cache_path(ws: Workspace, manifest: dict):
    """WS/cache/item-vectors-KEY.safetensors; the key changes with the weights and with any
    rebuilt feature file (written atomically, so a new inode and mtime)."""
    import hashlib
    from pathlib import Path
    h = hashlib.sha256(f"msm4sr-item-vectors:1\n{manifest.get('weights_sha256')}\n".encode())
    for m in manifest.get("modalities", []):
        p = store.path_for(ws.features_dir, m)
        st = p.stat()
        h.update(f"{m}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}\n".encode())
    return Path(ws.path) / "cache" / f"item-vectors-{h.hexdigest()[:32]}.safetensors"


def _read_cached(path, modalities: list[str], rows: int) -> dict | None:
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    try:
        got = load_file(str(path))
    except (OSError, SafetensorError, ValueError):
        return None   # missing or torn: compute again
    ok = set(got) == set(modalities) and all(
        v.dtype == torch.float32 and v.dim() == 2 and v.shape[0] == rows and torch.isfinite(v).all()
        for v in got.values())
    return got if ok else None


def _write_cached(path, vecs: dict) -> None:
    import os
    from safetensors.torch import save_file
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({m: v.detach().float().cpu().contiguous() for m, v in vecs.items()}, str(tmp))
    os.replace(tmp, path)
    old = sorted(path.parent.glob("item-vectors-*.safetensors"), key=lambda p: p.stat().st_mtime)
    for stale in old[:-4]:   # a few models at once (compare), not every model ever loaded
        stale.unlink(missing_ok=True)
