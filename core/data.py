"""From a workspace to tensors: item indices, feature tensors, training windows, batches.

Model index i+1 is item_ids[i] (the workspace's sorted ids); 0 is padding.
Sequences are left-padded, so the most recent item always sits at the last position.
Training uses every position of a window of max_len+1 items at once (causal
transformer, a target at each position): long sequences are cut into such
windows from their end, so every training target is used once per epoch.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import torch

from core.config import Config
from core.errors import InputError
from core.features import store
from core.splits import Split, leave_one_out
from core.workspace import Workspace

Case = tuple[np.ndarray, int]  # (history indices, target index)


@dataclass
class Dataset:
    item_ids: list[str]
    index: dict[str, int]                 # id -> model index (1-based)
    train: list[np.ndarray]               # training sequences (indices)
    valid: list[Case]
    test: list[Case]
    cold: list[Case]
    cold_items: np.ndarray                # indices of held-out (cold) items
    seen: np.ndarray                      # bool [N+1]: item occurs in training sequences
    popularity: np.ndarray                # int [N+1]: interactions per item in the workspace
    fingerprint: str
    features: dict = field(default_factory=dict)    # modality -> (FeatureRows [N+1,V,D], mask [N+1,V])
    identities: dict = field(default_factory=dict)  # modality -> feature-extractor identity

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def dims(self) -> dict:
        return {m: int(x.shape[-1]) for m, (x, _) in self.features.items()}


def feature_identity(fs: store.FeatureSet) -> dict:
    """What must match between a checkpoint and a workspace for features to mean the same."""
    keys = ("model", "source", "clip_model", "clip_pretrained", "clip_weights_sha256",
            "vocab_sha256", "keywords")
    ident = {k: fs.meta[k] for k in keys if fs.meta.get(k) not in (None, "")}
    ident["dim"] = fs.dim
    return ident


class FeatureRows:
    """A feature file's vectors in model-index order, read through a row map, not copied.

    `vectors` is the file's (memory-mapped) tensor cut to V slots, a view; `rows` [N+1]
    maps a model index to its file row, -1 for padding and items the file lacks, which read
    as zero rows. Indexing gathers only the asked rows: `x[idx]`, `x[idx, :n]` (float16).
    Copying a 1M-item file into model order held it twice (4.5 GB each at 592k items)."""

    def __init__(self, vectors: torch.Tensor, rows: torch.Tensor, release=None):
        if not len(vectors):   # a file of no items: every row reads as zeros
            vectors = torch.zeros(1, *vectors.shape[1:], dtype=torch.float16)
        self.vectors, self.rows = vectors, rows
        self._release = release   # the FeatureSet's release_pages, for a file map
        self.shape = torch.Size((len(rows), *vectors.shape[1:]))
        self.dtype, self.device = torch.float16, vectors.device

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        idx, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        r = self.rows[idx]
        x = self.vectors[(slice(None), *rest)] if rest else self.vectors   # a view: cut, then gathered
        out = x[r.clamp(min=0)].to(torch.float16)
        empty = r < 0
        if bool(empty.any()):
            out = out.masked_fill(empty.view(*empty.shape, *(1,) * (out.dim() - empty.dim())), 0)
        return out

    def release_pages(self) -> None:
        """Drop the file pages read so far from the process's resident set (they stay
        cached by the kernel): a pass over every item calls it after each chunk."""
        if self._release is not None:
            self._release()

    def to(self, device) -> "FeatureRows | torch.Tensor":
        """Itself on the CPU; elsewhere (CUDA) the rows gathered whole onto the device, in chunks."""
        device = torch.device(device)
        if device.type == "cpu":
            return self
        out = torch.empty(self.shape, dtype=torch.float16, device=device)
        for lo in range(0, len(self), 16384):
            out[lo:lo + 16384] = self[torch.arange(lo, min(lo + 16384, len(self)))].to(device)
        return out


def align_features(fs: store.FeatureSet, item_ids: list[str]) -> tuple[FeatureRows, torch.Tensor]:
    """(vectors [N+1, V, D] as a FeatureRows over the file, mask bool [N+1, V] copied) in
    model-index order (row 0 = padding); items absent from the file are masked, zero rows.

    Slots that no item uses are cut off (a catalog of titles alone uses 1 of 10), so pooling
    does not spend its time on masked vectors."""
    where = fs.index()
    used = fs.mask.bool().any(0).nonzero()
    V = int(used.max()) + 1 if len(used) else 1
    rows = torch.tensor([-1] + [where.get(i, -1) for i in item_ids], dtype=torch.int64)
    ok = rows >= 0
    m = torch.zeros(len(rows), V, dtype=torch.bool)
    m[ok] = fs.mask[rows[ok], :V].bool()
    return FeatureRows(fs.vectors[:, :V], rows, fs.release_pages), m


def resolve_modalities(cfg: Config, available: list[str]) -> list[str]:
    if cfg.model == "sasrec":
        return []
    want = {"auto": available, "both": ["text", "image"], "text": ["text"], "image": ["image"]}[cfg.modalities]
    missing = [m for m in want if m not in available]
    if missing:
        raise InputError(f"{cfg.modalities} features requested but {', '.join(missing)} features "
                         f"are not built in this workspace (run `msm4sr features`)")
    if not want:
        raise InputError("MSM4SR needs item features: run `msm4sr features` first, or use --model sasrec")
    return list(want)


def fingerprint(item_ids: list[str], split: Split) -> str:
    h = hashlib.sha256()
    for part in (item_ids, split.train, split.valid, split.test, split.cold):
        h.update(json.dumps(part, separators=(",", ":")).encode())
    return h.hexdigest()


def load_dataset(ws: Workspace, cfg: Config, need_features: bool | None = None,
                 item_ids: list[str] | None = None) -> Dataset:
    """Items, the leave-one-out split in indices, and (for msm4sr) the feature tensors.

    `item_ids`: a fixed item list (a checkpoint's); other workspace items (new ones) are left out.
    """
    items = ws.items()
    if item_ids is not None:
        order = {i: k for k, i in enumerate(item_ids)}
        items = sorted((i for i in items if i.id in order), key=lambda i: order[i.id])
    item_ids = [i.id for i in items]
    if not item_ids:
        raise InputError(f"{ws.path}: the workspace has no items; import a catalog first")
    index = {i: k + 1 for k, i in enumerate(item_ids)}
    cold_ids = {i.id for i in items if i.cold}
    seqs = ws.sequences()
    if item_ids is not None:
        seqs = {u: [i for i in s if i in index] for u, s in seqs.items()}
    split = leave_one_out(seqs, cold_ids)
    if not split.valid:
        raise InputError(f"{ws.path}: no user has 3 or more interactions; nothing to train on")
    enc = lambda seq: np.array([index[i] for i in seq], dtype=np.int64)  # noqa: E731
    train = [enc(s) for s in split.train if len(s) >= 2]
    seen = np.zeros(len(item_ids) + 1, dtype=bool)
    for s in train:
        seen[s] = True
    pop = np.zeros(len(item_ids) + 1, dtype=np.int64)
    for i, n in ws.popularity().items():
        if i in index:
            pop[index[i]] = n
    ds = Dataset(
        item_ids=item_ids, index=index, train=train,
        valid=[(enc(h), index[t]) for h, t in split.valid],
        test=[(enc(h), index[t]) for h, t in split.test],
        cold=[(enc(h), index[t]) for h, t in split.cold],
        cold_items=np.array(sorted(index[i] for i in cold_ids), dtype=np.int64),
        seen=seen, popularity=pop, fingerprint=fingerprint(item_ids, split))
    if need_features is None:
        need_features = cfg.model == "msm4sr"
    if need_features:
        available = {m: fs for m in store.MODALITIES
                     if (fs := store.load(ws.features_dir, m)) is not None}
        for m in resolve_modalities(cfg, list(available)):
            ds.features[m] = align_features(available[m], item_ids)
            ds.identities[m] = feature_identity(available[m])
    return ds


def windows(seqs: list[np.ndarray], max_len: int) -> list[np.ndarray]:
    """Cut each sequence from its end into windows of <= max_len+1 items (targets don't overlap)."""
    out = []
    for s in seqs:
        end = len(s)
        while end >= 2:
            out.append(s[max(0, end - max_len - 1):end])
            end -= max_len
    return out


def left_pad(seqs, length: int) -> np.ndarray:
    """The last `length` items of each sequence, left-padded with 0."""
    out = np.zeros((len(seqs), length), dtype=np.int64)
    for r, s in enumerate(seqs):
        s = s[-length:]
        if len(s):
            out[r, length - len(s):] = s
    return out


def item_drop(arr: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    """Remove a share p of the non-padding items of each row (order kept, re-left-padded)."""
    keep = (arr > 0) & (rng.random(arr.shape) >= p)
    short = keep.sum(1) < 2
    keep[short] = arr[short] > 0  # rows that would fall under two items stay whole
    order = np.argsort(keep, axis=1, kind="stable")  # dropped/padding first, kept last, in order
    return np.take_along_axis(np.where(keep, arr, 0), order, axis=1)


def batches(wins: list[np.ndarray], max_len: int, batch_size: int, rng: np.random.Generator,
            drop_max: float = 0.0):
    """Shuffled (inp, tgt) LongTensor pairs [B, max_len]; tgt 0 where there is no target."""
    order = rng.permutation(len(wins))
    for start in range(0, len(order), batch_size):
        arr = left_pad([wins[k] for k in order[start:start + batch_size]], max_len + 1)
        if drop_max > 0:
            arr = item_drop(arr, rng.uniform(0, drop_max), rng)
        inp, tgt = arr[:, :-1], arr[:, 1:].copy()
        tgt[inp == 0] = 0
        yield torch.from_numpy(np.ascontiguousarray(inp)), torch.from_numpy(tgt)


def n_batches(n: int, batch_size: int) -> int:
    return (n + batch_size - 1) // batch_size
