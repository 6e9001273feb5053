"""Building blocks: attention pooling, the MoE adaptor, and a causal transformer
that can hand back its attention weights (for the app's attention view)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class AttentionPool(nn.Module):
    """Pool an item's several feature vectors: a = softmax_v(w^T tanh(W x_v + b)), masked."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.proj = nn.Linear(dim, hidden)
        self.w = nn.Linear(hidden, 1, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # x [N, V, D], mask [N, V] bool -> [N, D]; an all-false row pools to zeros
        logits = self.w(torch.tanh(self.proj(x))).squeeze(-1)
        logits = logits.masked_fill(~mask, float("-inf"))
        a = torch.softmax(logits, dim=-1).nan_to_num(0.0)
        return torch.einsum("nv,nvd->nd", a, x)


class MoEAdaptor(nn.Module):
    """UniSRec's parametric whitening experts: sum_k g_k f_k(x), g = softmax(x G), f_k(x) = (x - b_k) W_k.

    norm=True ends each expert in its own LayerNorm, as the authors' code does: f_k(x) =
    LN_k((x - b_k) W_k). Item vectors then start at the scale of the transformer's inputs
    (norm ~ sqrt(H)) instead of ~0.06, so content, not the position embeddings, leads."""

    def __init__(self, dim: int, hidden: int, experts: int, dropout: float, norm: bool = False):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.bias = nn.Parameter(torch.zeros(experts, dim))
        self.weight = nn.Parameter(torch.empty(experts, dim, hidden))
        nn.init.normal_(self.weight, std=0.02)
        self.gate = nn.Parameter(torch.zeros(dim, experts))  # zero: equal experts at start
        self.norm = norm
        if norm:
            self.norm_weight = nn.Parameter(torch.ones(experts, hidden))
            self.norm_bias = nn.Parameter(torch.zeros(experts, hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x [N, D] -> [N, H]
        x = self.drop(x)
        g = torch.softmax(x @ self.gate, dim=-1)                          # [N, K]
        # (x - b_k) W_k = x W_k - b_k W_k: one matmul for all experts, no [N, K, D] copy
        y = torch.einsum("nd,kdh->nkh", x, self.weight) - torch.einsum("kd,kdh->kh", self.bias, self.weight)
        if self.norm:
            y = F.layer_norm(y, y.shape[-1:], eps=1e-12) * self.norm_weight + self.norm_bias
        return torch.einsum("nk,nkh->nh", g, y)


class Block(nn.Module):
    """Post-LN transformer layer as in SASRec/RecBole: x = LN(x + drop(attn)); x = LN(x + drop(ffn))."""

    def __init__(self, hidden: int, heads: int, inner: int, dropout: float, attn_dropout: float):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.ln1 = nn.LayerNorm(hidden, eps=1e-12)
        self.ff1 = nn.Linear(hidden, inner)
        self.ff2 = nn.Linear(inner, hidden)
        self.ln2 = nn.LayerNorm(hidden, eps=1e-12)
        self.drop = nn.Dropout(dropout)
        self.attn_dropout = attn_dropout

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, need_weights: bool = False):
        B, L, H = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, H // self.heads).permute(2, 0, 3, 1, 4)
        weights = None
        if need_weights:
            att = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
            att = torch.softmax(att.masked_fill(~allowed, float("-inf")), dim=-1)
            weights = att
            y = att @ v
        else:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=allowed, dropout_p=self.attn_dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(B, L, H)
        x = self.ln1(x + self.drop(self.out(y)))
        x = self.ln2(x + self.drop(self.ff2(F.gelu(self.ff1(x)))))
        return x, weights


class SeqEncoder(nn.Module):
    """Learned positions + LayerNorm + dropout + causal transformer over left-padded sequences."""

    def __init__(self, hidden: int, layers: int, heads: int, inner: int, max_len: int,
                 dropout: float, attn_dropout: float):
        super().__init__()
        self.pos = nn.Embedding(max_len, hidden)
        self.ln = nn.LayerNorm(hidden, eps=1e-12)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(hidden, heads, inner, dropout, attn_dropout) for _ in range(layers))

    def forward(self, emb: torch.Tensor, pad: torch.Tensor, need_weights: bool = False):
        """emb [B, L, H], pad [B, L] bool (True = padding) -> [B, L, H] (and attention per layer)."""
        B, L, _ = emb.shape
        pos = torch.arange(self.pos.num_embeddings - L, self.pos.num_embeddings, device=emb.device)
        x = self.drop(self.ln(emb + self.pos(pos)))
        causal = torch.ones(L, L, dtype=torch.bool, device=emb.device).tril()
        # a query may see earlier non-padding keys, and always itself (no all-masked rows)
        allowed = (causal & ~pad[:, None, None, :]) | torch.eye(L, dtype=torch.bool, device=emb.device)
        weights = []
        for block in self.blocks:
            x, w = block(x, allowed, need_weights)
            weights.append(w)
        return (x, weights) if need_weights else x


def init_weights(module: nn.Module) -> None:
    """RecBole's initialisation: normal(0, 0.02) linears/embeddings, LayerNorm at identity."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
