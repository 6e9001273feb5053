"""What a training run will do, said once before it starts: the modalities and losses in
use and why some are off, the stage budgets, and how validation is scheduled.

The trainer emits it as one "setup" event (progress.jsonl, --progress-json) and the
terminal prints its `lines`.
"""
from __future__ import annotations

from core.config import Config
from core.data import Dataset

LOSS_NAMES = {"nip_text": "NIP (text)", "nip_image": "NIP (image)", "cmcl": "CMCL",
              "ce": "cross-entropy over every item",
              "sampled_ce": "sampled softmax (in-batch and drawn negatives, logQ-corrected)"}


def _ce(cfg: Config, ds: Dataset) -> str:
    from core.model.sampled import use_sampled
    return "sampled_ce" if use_sampled(cfg, ds.n_items) else "ce"


def _image_reason(cfg: Config, ds: Dataset, counts: dict | None) -> str | None:
    """Why the image side is off, or None when it is on."""
    if "image" in ds.features:
        return None
    if cfg.modalities == "text":
        return "modalities=text chosen"
    if counts is not None and not counts.get("items_with_image"):
        return "no image features: the catalog has no images"
    return "no image features built (`msm4sr features` with CLIP weights, or --keywords-from " \
           "catalog-tags)"


def describe(cfg: Config, ds: Dataset, stages: list[str], counts: dict | None = None) -> dict:
    """The "setup" event: modalities, losses per stage, what is off and why, budgets."""
    mods = list(ds.features)
    notes, losses = [], {}
    if cfg.model == "sasrec":
        losses["finetune"] = [_ce(cfg, ds)]
        notes.append("SASRec: item IDs only, no item content; new items cannot be recommended")
    else:
        both = len(mods) == 2
        why = _image_reason(cfg, ds, counts)
        if why:
            notes.append(f"{why}: image NIP, CMCL and mixup off; text only")
        elif "text" not in mods:
            notes.append("modalities=image chosen: text NIP, CMCL and mixup off; image only")
        if "pretrain" in stages:
            pre = [f"nip_{m}" for m in mods] if cfg.nip else []
            if both and cfg.cmcl:
                pre.append("cmcl")
            losses["pretrain"] = pre
            if not cfg.nip:
                notes.append("nip=false: NIP off")
            if both and not cfg.cmcl:
                notes.append("cmcl=false: CMCL off")
            if both and not cfg.mixup:
                notes.append("mixup=false: no sequence mixup")
        elif not cfg.pretrain:
            notes.append("pretrain=false: fine-tuning from scratch")
        if "finetune" in stages:
            losses["finetune"] = [_ce(cfg, ds)]
        if "image" in ds.features:
            x, mask = ds.features["image"]
            have = int(mask[1:].any(1).sum())
            if have < ds.n_items:
                notes.append(f"image features for {have:,} of {ds.n_items:,} items; the others "
                             f"use their text on the image side")
    mixup = cfg.model == "msm4sr" and len(mods) == 2 and cfg.mixup and "pretrain" in stages
    budgets = {s: getattr(cfg, f"{s}_minutes") for s in stages}
    return {"event": "setup", "model": cfg.model, "stages": stages, "modalities": mods,
            "losses": losses, "mixup": mixup, "notes": notes, "budget_minutes": budgets}


def lines(setup: dict) -> list[str]:
    """The setup event as the terminal prints it."""
    out = []
    if setup["model"] == "msm4sr":
        out.append(f"modalities: {', '.join(setup['modalities'])}")
    for stage, names in setup["losses"].items():
        extra = " + sequence mixup" if stage == "pretrain" and setup.get("mixup") else ""
        out.append(f"{stage} losses: {', '.join(LOSS_NAMES.get(n, n) for n in names)}{extra}")
    out += setup["notes"]
    spent = {s: m for s, m in setup["budget_minutes"].items() if m}
    if spent:
        out.append("budget: " + ", ".join(f"{s} {m:g} min" for s, m in spent.items()))
    if setup.get("validation"):
        out.append(f"validation: {setup['validation']}")
    return out
