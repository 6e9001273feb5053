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
        return "no image features (the catalog has no images)"
    return "no image features (not built: `msm4sr features` with CLIP weights, or " \
           "--keywords-from catalog-tags)"


def describe(cfg: Config, ds: Dataset, stages: list[str], counts: dict | None = None) -> dict:
    """The "setup" event: modalities, losses per stage, what is off and why, budgets, and
    each stage's validation cadence."""
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
    validation = {s: Cadence.of(cfg, s).describe(len(ds.valid)) for s in stages}
    return {"event": "setup", "model": cfg.model, "stages": stages, "modalities": mods,
            "losses": losses, "mixup": mixup, "notes": notes, "budget_minutes": budgets,
            "validation": validation}


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
        out.append("budget: " + ", ".join(f"{s} {m:.3g} min" for s, m in spent.items()))
    for stage, text in (setup.get("validation") or {}).items():
        out.append(f"{stage} validation: {text}")
    return out


class Cadence:
    """When a stage validates: every `every` epochs (eval_every), and always on the stage's
    last epoch (its epoch cap, or the one that spends its budget). Pre-training (`share`:
    eval_share) also skips a due validation that would take validation past that share of
    the stage's time so far, judged by the mean cost of its validations: on a sparse catalog
    an epoch can be a few steps, and validating each one took most of the stage. This uses
    the wall clock, so two runs may keep different pre-training epochs; eval_share = 0 makes
    the cadence eval_every alone. Fine-tuning always validates on eval_every: its validation
    picks the model that is kept. The times live in the stage state, so a resume goes on
    with them."""

    def __init__(self, every: int, share: float | None = None):
        self.every, self.share = max(1, every), share or None

    @classmethod
    def of(cls, cfg: Config, stage: str) -> "Cadence":
        return cls(cfg.eval_every, cfg.eval_share if stage == "pretrain" else None)

    def due(self, epoch: int, last: bool, st: dict) -> bool:
        if not last and epoch % self.every:
            return False
        if last or self.share is None or not st.get("valid_n"):
            return True
        cost = st["valid_s"] / st["valid_n"]
        return st["valid_s"] + cost <= self.share * (st["train_s"] + st["valid_s"] + cost)

    def describe(self, users: int) -> str:
        every = "every epoch" if self.every == 1 else f"every {self.every} epochs"
        text = f"{every} on all {users:,} valid users"
        if self.share is not None:
            text += (f", skipping any that would take validation past {self.share:.0%} of the "
                     f"stage's time (the last epoch always validates; patience counts validations)")
        return text
