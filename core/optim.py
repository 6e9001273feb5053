"""The optimiser of a training stage.

AdamW (decoupled weight decay) with no decay on biases, norms and embeddings, or, with
`optimizer = "adam"`, Adam with L2 decay on every weight, as RecBole and the paper use it
(the "paper" preset). Coupled L2 pulls weights whose gradients are small to zero: it
collapsed the attention of the demo model it trained (docs/benchmarks.md).
"""
from __future__ import annotations

import torch

from core.config import Config


def stage_settings(cfg: Config, stage: str) -> tuple[float, float]:
    """(learning rate, weight decay) of a stage; SASRec has its own."""
    if stage == "pretrain":
        return cfg.pretrain_lr, cfg.pretrain_weight_decay
    if cfg.model == "sasrec":
        return cfg.sasrec_lr, cfg.sasrec_weight_decay
    return cfg.finetune_lr, cfg.finetune_weight_decay


def make_optimizer(model, cfg: Config, stage: str) -> torch.optim.Optimizer:
    lr, wd = stage_settings(cfg, stage)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
    return torch.optim.AdamW(param_groups(model, wd), lr=lr)


def param_groups(model, weight_decay: float) -> list[dict]:
    """AdamW groups: decay on weight matrices only; none on biases, norms and embeddings.

    Embeddings (item IDs, positions) and norm gains are values, not maps: decaying them
    pulls rarely updated rows to zero. Everything 1-D is a bias or a norm; the MoE
    whitening biases and per-expert norms are 2-D but named so."""
    no_decay = set()
    for mname, mod in model.named_modules():
        if isinstance(mod, (torch.nn.Embedding, torch.nn.LayerNorm)):
            no_decay |= {f"{mname}.{n}" if mname else n for n, _ in mod.named_parameters(recurse=False)}
    decay, rest = [], []
    for name, p in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if name in no_decay or p.ndim < 2 or leaf.endswith("bias") or leaf.startswith("norm"):
            rest.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]
