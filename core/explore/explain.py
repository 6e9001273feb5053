"""Why the model ranks a target item after a sequence.

    e = explain(ws, rec, ["1", "260", "1196"], target="1210")
    e.contributions   # per sequence item: the target's score without it, and the drop
    e.shared          # keywords and title words the target shares with the top contributors
    e.attention       # per layer, per head: the last position's attention row

Leave-one-out is one batched pass: row 0 is the sequence, row j+1 the sequence without
its j-th item (left-padded), so n items cost one transformer call on n+1 rows. Only the
last max_len items are read by the model, so only they are explained; items the model
cannot represent (new items under SASRec) get no score.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from core.errors import InputError
from core.explore.items import keyword_sets, model_items, row_of, title_words


@dataclass
class Contribution:
    """drop = score(sequence) - score(sequence without this item); None when the model does
    not see the item (before the last max_len, or not representable) or nothing is left."""
    position: int
    item_id: str
    title: str
    score_without: float | None
    drop: float | None
    attention: float | None = None   # last layer, mean over heads, last position's row


@dataclass
class Shared:
    item_id: str
    title: str
    drop: float
    keywords: list[str]
    words: list[str]


@dataclass
class Explanation:
    target: str
    title: str
    score: float
    rank: int                                    # 1 = the model's top recommendation
    sequence: list[str]
    contributions: list[Contribution]
    shared: list[Shared] = field(default_factory=list)
    attention: list[list[list[float]]] = field(default_factory=list)   # [layer][head][position]
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def by_drop(self) -> list[Contribution]:
        """Contributions with a score, largest drop first."""
        return sorted((c for c in self.contributions if c.drop is not None), key=lambda c: -c.drop)


def _loo_index(n: int) -> torch.Tensor:
    """[n+1, n] gather index into a sequence extended by one padding slot (index n):
    row 0 = the sequence, row j+1 = padding then every position but j."""
    base = torch.arange(n - 1)
    rows = base[None, :] + (base[None, :] >= torch.arange(n)[:, None]).long()
    loo = torch.cat([torch.full((n, 1), n, dtype=torch.long), rows], 1)
    return torch.cat([torch.arange(n)[None], loo])


def _last_block_last_query(block, x, allowed):
    """The last block of SeqEncoder for the last position only ([B, L, H] -> [B, 1, H]):
    the same arithmetic as Block.forward in eval mode, but one query instead of L, and the
    output projection and feed-forward on that one position. Only the last position
    makes the user vector, so this is all the scores need."""
    B, L, H = x.shape
    h = block.heads
    w, b = block.qkv.weight, block.qkv.bias
    kv = F.linear(x, w[H:], b[H:]).view(B, L, 2, h, H // h).permute(2, 0, 3, 1, 4)
    q = F.linear(x[:, -1:], w[:H], b[:H]).view(B, 1, h, H // h).transpose(1, 2)
    y = F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=allowed[:, :, -1:, :])
    y = y.transpose(1, 2).reshape(B, 1, H)
    x = block.ln1(x[:, -1:] + block.out(y))
    return block.ln2(x + block.ff2(F.gelu(block.ff1(x))))


def _last_states(encoder, emb, pad):
    """SeqEncoder.forward's output at the last position, [B, H] (eval mode)."""
    B, L, _ = emb.shape
    n = encoder.pos.num_embeddings
    x = encoder.ln(emb + encoder.pos(torch.arange(n - L, n, device=emb.device)))
    causal = torch.ones(L, L, dtype=torch.bool, device=emb.device).tril()
    allowed = (causal & ~pad[:, None, None, :]) | torch.eye(L, dtype=torch.bool, device=emb.device)
    for block in encoder.blocks[:-1]:
        x, _ = block(x, allowed)
    return _last_block_last_query(encoder.blocks[-1], x, allowed)[:, 0]


def _users(rec, inp_b, emb_b):
    """User vectors [B, K] of a batch, as the model's user_vectors(_from) computes them."""
    model = rec.model
    if model.training:   # dropout would apply: use the model's own path
        return (model.user_vectors_from(emb_b, inp_b == 0) if emb_b is not None
                else model.user_vectors(inp_b)).float()
    pad = inp_b == 0
    if emb_b is None:   # SASRec
        return _last_states(model.encoder, model.item_emb(inp_b.clamp(min=0)), pad).float()
    names = list(emb_b)
    out = _last_states(model.encoder, torch.cat([emb_b[m] for m in names]), pad.repeat(len(names), 1))
    return model.users_to_table(dict(zip(names, out.chunk(len(names))))).float()


@torch.no_grad()
def leave_one_out(rec, sequence, target: str, exclude=()):
    """(score, rank, scores without each kept item [n], kept positions, clipped length);
    rank is among all items the model ranks but those in `exclude` (as recommend's).

    One batched pass through the model; kept positions index the clipped sequence."""
    ids, table = model_items(rec)
    t = row_of(ids, target, f"the model {rec.folder}")
    inp, emb, keep, L = rec._input(sequence)
    n = inp.shape[1]
    if n == 0:
        raise InputError("the model cannot represent any item of the sequence")
    g = _loo_index(n).to(inp.device)
    inp_b = torch.cat([inp[0], inp.new_zeros(1)])[g]                           # [n+1, n]
    emb_b = None if emb is None else {m: torch.cat([v[0], rec.inputs[m][:1]])[g] for m, v in emb.items()}
    user = _users(rec, inp_b, emb_b)
    scores = user @ table[t]                                                    # [n+1]
    full = float(scores[0])
    above = table @ user[0] > scores[0]
    ban = set(exclude) - {target}
    if ban:
        above[[r for r, i in enumerate(ids) if i in ban]] = False
    rank = int(above.sum()) + 1
    without = scores[1:].tolist()
    if n == 1:   # nothing left to score from
        without = [None]
    return full, rank, without, keep, L


def explain(ws, rec, sequence, target: str, top: int = 3, exclude=()) -> Explanation:
    """Contribution of each sequence item to target's score, what the `top` largest
    contributors share with the target, and the last position's attention rows. Pass the
    recommendation list's `exclude` (e.g. the sequence) so the rank matches that list."""
    t0 = time.perf_counter()
    sequence = list(sequence)
    if not sequence:
        raise InputError("--items: give at least one item id")
    full, rank, without, keep, L = leave_one_out(rec, sequence, target, exclude)
    offset = len(sequence) - L
    maps = rec.attention(sequence)                         # [layers] of [heads, L, L]
    rows = [m[:, -1, :] for m in maps]
    last = rows[-1].mean(0) if rows else None
    titles = {}

    def title(i):
        if i not in titles:
            it = ws.item(i) if isinstance(i, str) else None
            titles[i] = it.title if it else getattr(i, "title", "")
        return titles[i]

    score_at = {pos: s for pos, s in zip(keep, without)}
    contributions = []
    for pos in range(L):
        item = sequence[offset + pos]
        s = score_at.get(pos)
        contributions.append(Contribution(
            offset + pos, item if isinstance(item, str) else f"adhoc:{title(item)}", title(item),
            None if s is None else round(s, 6), None if s is None else round(full - s, 6),
            None if last is None else round(float(last[pos]), 6)))
    exp = Explanation(target, title(target), round(full, 6), rank, [c if isinstance(c, str) else
                      f"adhoc:{title(c)}" for c in sequence], contributions,
                      attention=[[[round(float(x), 6) for x in h] for h in r] for r in rows])
    best = [c for c in exp.by_drop() if c.drop > 0][:top]
    sets = keyword_sets(ws, [target] + [c.item_id for c in best])
    mine, my_words = sets.get(target, set()), title_words(exp.title)
    exp.shared = [Shared(c.item_id, c.title, c.drop, sorted(mine & sets.get(c.item_id, set())),
                         sorted(my_words & title_words(c.title))) for c in best]
    exp.seconds = time.perf_counter() - t0
    return exp
