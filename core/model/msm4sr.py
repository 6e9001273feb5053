"""MSM4SR: multimodal pre-training for sequential recommendation (arXiv 2303.11879).

Items: each modality's several feature vectors are attention-pooled, then mapped
by an MoE adaptor into the model space (e_t for text, e_v for image keywords).
M2SE: the text sequence and the image sequence are complementarily mixed
(positions swapped with probability p <= 0.5, so each stays dominated by its own
modality) and encoded by one shared causal transformer.
Pre-training: NIP (next item in text space and in image space, in-batch
negatives, at every target position by default) + lambda * CMCL (the two mixed
sequences of a user are positives; negatives cross- and intra-modal, as in the
authors' code). Optional projection heads map each mixed sequence into both
item spaces, as the authors' `proj` option does. Losses: core.model.losses.
Fine-tuning: item-ID embeddings are added to both modalities' item vectors;
score = (s_t . e_t + s_v . e_v) / temperature over L2-normalised vectors, CE over all items.

Missing modality: an item without image keywords takes its text vector as its
image vector (and the reverse), so it is still scored from real content; an
item with neither gets a learned "missing" vector. A workspace without image
features trains text-only: the image terms (NIP-image, CMCL, mixup) drop out.
Items never seen in training (cold-start, new) get no ID embedding: a zero
`seen` flag switches it off, so they are scored from their features only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core import distributed
from core.config import Config
from core.model.layers import AttentionPool, MoEAdaptor, SeqEncoder, init_weights
from core.model.losses import cmcl_loss, nip_loss
from core.model.sampled import sampled_cross_entropy, use_sampled


class MSM4SR(nn.Module):
    def __init__(self, cfg: Config, n_items: int, text_dim: int | None, image_dim: int | None):
        super().__init__()
        if text_dim is None and image_dim is None:
            raise ValueError("MSM4SR needs text or image features")
        self.cfg, self.n_items = cfg, n_items
        self.text_dim, self.image_dim = text_dim, image_dim
        H = cfg.hidden
        self.encoder = SeqEncoder(H, cfg.layers, cfg.heads, cfg.inner, cfg.max_len,
                                  cfg.dropout, cfg.attn_dropout)
        self.id_emb = nn.Embedding(n_items + 1, H, padding_idx=0)
        init_weights(self)
        self.mods = nn.ModuleDict()
        for name, dim in (("text", text_dim), ("image", image_dim)):
            if dim is not None:
                self.mods[name] = nn.ModuleDict({
                    "pool": AttentionPool(dim, cfg.pool_dim),
                    "adaptor": MoEAdaptor(dim, H, cfg.experts, cfg.adaptor_dropout, cfg.expert_norm)})
        # pre-training only: modality m's head maps any sequence vector into m's item space
        self.heads = nn.ModuleDict({m: nn.Linear(H, H) for m in self.mods}) if cfg.proj_heads else None
        if self.heads is not None:
            init_weights(self.heads)
        self.missing = nn.ParameterDict(
            {name: nn.Parameter(torch.randn(H) * 0.02) for name in self.mods})
        with torch.no_grad():
            self.id_emb.weight.zero_()  # ID part starts at zero: fine-tuning starts from pure content
        # 1 for items that occur in training sequences; only those use their ID embedding
        self.register_buffer("seen", torch.zeros(n_items + 1))
        self.use_ids = False  # set for fine-tuning (and by a fine-tuned checkpoint)
        self.sampler = None   # a NegativeSampler when fine-tuning uses the sampled softmax
        self.feats: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def modalities(self) -> list[str]:
        return list(self.mods)

    # ---- items ----------------------------------------------------------
    def set_features(self, feats: dict) -> None:
        """feats: modality -> (vectors [N+1, V, D], mask bool [N+1, V]); row 0 is padding.

        vectors: a tensor or a core.data.FeatureRows over the mapped feature file, kept as
        stored (float16, not copied on the CPU): a step converts only the rows it gathers."""
        dev = self.seen.device
        self.feats = {m: (x.to(dev), k.to(dev)) for m, (x, k) in feats.items() if m in self.mods}
        missing = set(self.mods) - set(self.feats)
        if missing:
            raise ValueError(f"features missing for {sorted(missing)}")

    def _apply(self, fn, *args, **kw):  # keep the feature tensors on the model's device
        out = super()._apply(fn, *args, **kw)
        dev = self.seen.device   # a row map only moves (its rows stay float16 as stored)
        self.feats = {m: (x.to(dev) if not isinstance(x, torch.Tensor) else fn(x), fn(k))
                      for m, (x, k) in self.feats.items()}
        return out

    def encode_features(self, feats: dict) -> dict[str, torch.Tensor]:
        """Raw features (modality -> (vectors [n, V, D], mask [n, V])) -> modality -> [n, H]."""
        out, has = {}, {}
        for m, (x, k) in feats.items():
            if m not in self.mods:
                continue
            if m == "text" and self.cfg.text_vectors:   # the first sentences only (title first)
                x, k = x[:, :self.cfg.text_vectors], k[:, :self.cfg.text_vectors]
            mod = self.mods[m]
            out[m] = mod["adaptor"](mod["pool"](x.float(), k))
            has[m] = k.any(-1, keepdim=True)
        for m in self.mods:  # fall back: other modality, else the learned missing vector
            others = [o for o in self.mods if o != m]
            fallback = self.missing[m].expand_as(out[m])
            if others:
                o = others[0]
                fallback = torch.where(has[o], out[o], fallback)
            out[m] = torch.where(has[m], out[m], fallback)
        return out

    def item_vectors(self, idx: torch.Tensor, id_keep: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Content (+ ID when fine-tuned, seen items only) vectors of item indices [n] -> [n, H].

        id_keep [n]: 0 where an item's ID embedding is dropped for this step (id_dropout)."""
        n = self.cfg.text_vectors or None   # gather only the vectors that are pooled
        out = self.encode_features({m: (x[idx, :n], k[idx, :n]) if m == "text" else (x[idx], k[idx])
                                    for m, (x, k) in self.feats.items()})
        keep = (idx > 0).unsqueeze(-1).to(next(iter(out.values())).dtype)
        if self.use_ids:
            ids = self.id_emb(idx) * self.seen[idx].unsqueeze(-1)
            if id_keep is not None:
                ids = ids * id_keep.unsqueeze(-1)
            out = {m: v + ids for m, v in out.items()}
        return {m: v * keep for m, v in out.items()}

    # ---- sequences ------------------------------------------------------
    def _encode(self, seqs: dict[str, torch.Tensor], pad: torch.Tensor) -> dict[str, torch.Tensor]:
        """Encode each modality's embedded sequence [B, L, H] with the shared transformer, in one pass."""
        names = list(seqs)
        out = self.encoder(torch.cat([seqs[m] for m in names]), pad.repeat(len(names), 1))
        return dict(zip(names, out.chunk(len(names))))

    def _embed(self, inp: torch.Tensor) -> dict[str, torch.Tensor]:
        uniq, inv = torch.unique(inp, return_inverse=True)
        vecs = self.item_vectors(uniq)
        return {m: v[inv] for m, v in vecs.items()}

    def _scale(self) -> float:
        return 1.0 / self.cfg.temperature

    # ---- training losses ------------------------------------------------
    def loss(self, inp: torch.Tensor, tgt: torch.Tensor, stage: str, gen: torch.Generator | None = None,
             shard: distributed.Shard | None = None):
        """inp, tgt [B, L] (left-padded; tgt = next item, 0 = none). Returns (loss, parts).

        Data-parallel (`shard`: this rank's rows of the global batch): the query vectors
        and their targets are gathered from every rank (autograd all_gather), so the loss,
        and its in-batch negatives, are those of the global batch, as in one process."""
        if stage == "pretrain":
            return self._pretrain_loss(inp, tgt, gen, shard)
        return self._finetune_loss(inp, tgt, gen, shard)

    def _pretrain_loss(self, inp, tgt, gen, shard=None):
        cfg = self.cfg
        pad = inp == 0
        emb = self._embed(inp)
        both = len(self.mods) == 2
        if both and cfg.mixup:
            p = cfg.mixup_p_fixed if cfg.mixup_p_fixed is not None else \
                float(torch.rand((), generator=gen)) * cfg.mixup_p_max
            emb["text"], emb["image"] = complementary_mixup(emb["text"], emb["image"], pad, p, gen, shard)
        seq = self._encode(emb, pad)     # m -> [B, L, H]: the sequence led by modality m
        gather = distributed.all_gather if shard is not None else (lambda t: t)
        # in-batch negatives over the global batch: with a shard, every rank gathers all ranks'
        # queries (autograd all_gather: gradients flow back to the rank that made each query)

        def in_space(m, s):  # a sequence vector in modality m's item space
            return self.heads[m](s) if self.heads is not None else s

        parts, total = {}, 0.0
        if cfg.nip:
            rows, pos = query_positions(tgt, cfg.nip_positions, gen, shard)
            y = gather(tgt[rows, pos])
            uniq, label = torch.unique(y, return_inverse=True)
            items = {m: F.normalize(v, dim=-1) for m, v in self.item_vectors(uniq).items()}
            for m in self.mods:
                views = list(self.mods) if self.heads is not None else [m]
                q = [gather(F.normalize(in_space(m, seq[s][rows, pos]), dim=-1)) for s in views]
                parts[f"nip_{m}"] = nip_loss(q, items[m], label, self._scale())
                total = total + parts[f"nip_{m}"]
        if both and cfg.cmcl:
            rows, pos = query_positions(tgt, cfg.cmcl_positions, gen, shard)
            y = gather(tgt[rows, pos])
            window = gather(rows + (shard.start if shard is not None else 0))
            spaces = list(self.mods) if self.heads is not None else [None]
            cmcl = 0.0
            for m in spaces:  # with heads: the two sequences compared in each item space
                a, b = ((in_space(m, seq[s][rows, pos]) if m else seq[s][rows, pos]) for s in ("text", "image"))
                cmcl = cmcl + cmcl_loss(gather(F.normalize(a, dim=-1)), gather(F.normalize(b, dim=-1)),
                                        y, window, self._scale(), intra=cfg.cmcl_negatives == "all")
            parts["cmcl"] = cmcl
            total = total + cfg.cmcl_weight * cmcl
        if not parts:
            raise ValueError("pre-training needs NIP or CMCL (with two modalities)")
        return total, parts

    def _finetune_loss(self, inp, tgt, gen=None, shard=None):
        pad = inp == 0
        id_keep = None
        if self.cfg.id_dropout > 0:
            # items scored from content alone this step, in the input and the output alike, so
            # the sequence vectors also learn to rank items as cold ones are ranked: by content
            draw = torch.rand(self.n_items + 1, generator=gen) if gen is not None else torch.rand(self.n_items + 1)
            id_keep = (draw.to(inp.device) >= self.cfg.id_dropout).float()
        valid = tgt > 0
        y = tgt[valid]
        if shard is not None:  # the mean over the global batch's targets, as in one process
            y = distributed.all_gather(y)
        if use_sampled(self.cfg, self.n_items):
            # only the items this step needs go through pooling and the adaptors
            cand, label, log_incl = self.sampler.candidates(y, gen)
            need, inv = torch.unique(torch.cat([inp.flatten(), cand]), return_inverse=True)
            vecs = self.item_vectors(need, None if id_keep is None else id_keep[need])
            seq = self._encode({m: v[inv[:inp.numel()]].view(*inp.shape, v.shape[-1]) for m, v in vecs.items()}, pad)
            items = self.vectors_to_table({m: v[inv[inp.numel():]] for m, v in vecs.items()})
        else:
            table = self.item_vectors(torch.arange(self.n_items + 1, device=inp.device), id_keep)
            seq = self._encode({m: v[inp] for m, v in table.items()}, pad)
            items = self.vectors_to_table({m: v[1:] for m, v in table.items()})
        user = self.users_to_table({m: s[valid] for m, s in seq.items()})
        if shard is not None:
            user = distributed.all_gather(user)
        if use_sampled(self.cfg, self.n_items):
            ce = sampled_cross_entropy(user, label, items, log_incl)
        else:
            ce = F.cross_entropy(user @ items.T, y - 1)
        return ce, {"ce": ce}

    # ---- scoring (evaluation, recommendation) ---------------------------
    # score(user, item) = the sum over modalities of cosine / temperature, as one product of
    # normalised concatenations: users_to_table(user) . vectors_to_table(item)
    def vectors_to_table(self, vecs: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([F.normalize(vecs[m], dim=-1) for m in self.mods], dim=-1)

    def users_to_table(self, vecs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.vectors_to_table(vecs) * self._scale()

    def item_table(self, chunk: int = 16384) -> torch.Tensor:
        """[N, K]: score(user, item) = user_vectors . item_table (row i = item index i+1)."""
        return self.table_from(self.all_item_vectors(chunk))

    def table_from(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The scoring table from every item's vectors (all_item_vectors: row = model index)."""
        return self.vectors_to_table({m: v[1:] for m, v in inputs.items()})

    def all_item_vectors(self, chunk: int = 16384, start: int = 0) -> dict[str, torch.Tensor]:
        """item_vectors of indices start..N, in chunks: pooling a million items at once would
        need their float32 features whole (15 GB at 10 x 384)."""
        idx = torch.arange(start, self.n_items + 1, device=self.seen.device)
        parts = []
        for i in range(0, len(idx), chunk):
            parts.append(self.item_vectors(idx[i:i + chunk]))
            for x, _ in self.feats.values():   # a mapped file's pages: read once, not kept
                if hasattr(x, "release_pages"):
                    x.release_pages()
        return {m: torch.cat([p[m] for p in parts]) for m in self.mods}

    def embed_sequence(self, inp: torch.Tensor, extra: dict[str, torch.Tensor] | None = None):
        """Item vectors of a sequence; `extra` modality -> [B, L, H] overrides where inp < 0 (new items)."""
        emb = self._embed(inp.clamp(min=0))
        if extra is not None:
            new = (inp < 0).unsqueeze(-1)
            emb = {m: torch.where(new, extra[m], v) for m, v in emb.items()}
        return emb

    def user_vectors(self, inp: torch.Tensor, extra=None) -> torch.Tensor:
        """inp [B, L] left-padded -> [B, K] (temperature folded in)."""
        return self.user_vectors_from(self.embed_sequence(inp, extra), inp == 0)

    def user_vectors_from(self, emb: dict[str, torch.Tensor], pad: torch.Tensor) -> torch.Tensor:
        """The same from already embedded sequences (item vectors computed once, by the
        Recommender and by an evaluation: `{m: inputs[m][inp]}`)."""
        seq = self._encode(emb, pad)
        return self.users_to_table({m: s[:, -1] for m, s in seq.items()})

    def attention(self, inp: torch.Tensor, extra=None) -> list[torch.Tensor]:
        return self.attention_from(self.embed_sequence(inp, extra), inp == 0)

    def attention_from(self, emb: dict[str, torch.Tensor], pad: torch.Tensor) -> list[torch.Tensor]:
        """Attention weights per layer, [B, heads, L, L], of the first modality's sequence."""
        _, weights = self.encoder(emb[self.modalities[0]], pad, need_weights=True)
        return weights


def _rand(shape, gen, shard):
    """Uniform draws for the rows of a batch; with a shard, this rank's rows of the global draw."""
    return torch.rand(shape, generator=gen) if shard is None else shard.rand(shape, gen)


def query_positions(tgt: torch.Tensor, k: int, gen: torch.Generator | None = None, shard=None):
    """(rows, positions) of the queries in a batch: every position with a next item (k = 0),
    or k of them drawn at random per window (all of a shorter window's)."""
    if k == 0:
        return (tgt > 0).nonzero(as_tuple=True)
    k = min(k, tgt.shape[1])
    r = _rand(tgt.shape, gen, shard).to(tgt.device).masked_fill(tgt == 0, -1.0)
    rv, pos = r.topk(k, dim=1)
    ok = rv >= 0
    rows = torch.arange(tgt.shape[0], device=tgt.device).unsqueeze(1).expand_as(pos)[ok]
    return rows, pos[ok]


def complementary_mixup(t: torch.Tensor, v: torch.Tensor, pad: torch.Tensor, p: float,
                        gen: torch.Generator | None = None, shard=None):
    """Swap text and image vectors at the same Bernoulli(p) positions (never at padding).

    mixed_t = (1-M) t + M v, mixed_v = (1-M) v + M t; with p <= 0.5 each mixed
    sequence stays dominated by its own modality."""
    swap = (_rand(pad.shape, gen, shard).to(pad.device) < p) & ~pad
    swap = swap.unsqueeze(-1)
    return torch.where(swap, v, t), torch.where(swap, t, v)
