"""Training configuration, layered like RecBole: dataclass defaults, then a named
preset (`--preset paper`), then a TOML file, then command-line overrides
(`--set key=value` and a few named flags).

The resolved config is saved with every run (config.json) and in every manifest.
"""
from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from core.errors import InputError


@dataclass
class Config:
    model: str = "msm4sr"            # msm4sr | sasrec
    # transformer
    hidden: int = 64
    layers: int = 2
    heads: int = 2
    inner: int = 256
    dropout: float = 0.2             # hidden dropout
    attn_dropout: float = 0.2
    max_len: int = 50
    # item features (msm4sr)
    modalities: str = "auto"         # auto (whatever the workspace has) | both | text | image
    pool_dim: int = 64               # attention-pooling hidden size
    experts: int = 8                 # MoE adaptor experts per modality
    adaptor_dropout: float = 0.2
    expert_norm: bool = False        # each MoE expert ends in a LayerNorm (the authors' code; measured no gain)
    text_vectors: int = 1            # text vectors pooled per item, title sentence first; 0 = all built.
                                     # 1: Scientific no worse (N@10 0.0722 vs 0.0714), 1.4x faster fine-tuning;
                                     # ML-1M titles fill one slot, so the same there (docs/benchmarks.md)
    # pre-training
    pretrain: bool = True            # False = fine-tune from scratch (ablation)
    item_drop_max: float = 0.2       # per batch p ~ U(0, item_drop_max)
    mixup: bool = True
    mixup_p_max: float = 0.5         # per batch p ~ U(0, mixup_p_max)
    mixup_p_fixed: float | None = None  # a fixed p instead of U(0, mixup_p_max)
    nip: bool = True
    cmcl: bool = True
    cmcl_weight: float = 0.01
    cmcl_negatives: str = "all"      # all: cross- and intra-modal (the authors') | cross: cross only
    proj_heads: bool = False         # pre-training heads that map each sequence into both spaces
    temperature: float = 0.07
    nip_positions: int = 0           # NIP queries per window: 0 = every target position, k = k random
    cmcl_positions: int = 4          # CMCL queries per window (random positions)
    pretrain_epochs: int = 50       # an upper bound: patience stops it
    pretrain_patience: int = 5       # keep the best epoch by content-only valid NDCG@10; 0 = keep the last
    pretrain_lr: float = 1e-3
    pretrain_batch: int = 256
    pretrain_weight_decay: float = 0.0
    # fine-tuning (also SASRec training)
    optimizer: str = "adamw"         # adamw: decoupled decay, none on biases, norms, embeddings | adam: L2 (paper)
    finetune_epochs: int = 200
    finetune_lr: float = 1e-3
    finetune_batch: int = 128        # windows of max_len targets: 6,400 targets a step
    finetune_weight_decay: float = 0.0
    id_dropout: float = 0.0          # MSM4SR: share of items whose ID embedding a step leaves out
    softmax: str = "auto"            # full | sampled (in-batch + drawn negatives, logQ) | auto: by catalog size
    full_softmax_max_items: int = 20_000  # auto: full softmax up to here (bench_scale --sweep: 1.2x at 20k, 4.3x at 50k)
    sampled_negatives: int = 3000    # negatives drawn per step by the sampled softmax (SASRec+)
    negative_sampler: str = "uniform"  # uniform | popularity (training target counts)
    sasrec_lr: float = 1e-3          # SASRec trains from scratch: a larger step
    sasrec_weight_decay: float = 0.0
    patience: int = 10               # epochs without valid NDCG@10 improvement
    pretrain_minutes: float = 0.0    # wall-clock budget of a stage, checked after each epoch; 0 = none
    finetune_minutes: float = 0.0
    grad_clip: float = 5.0
    # run
    seed: int = 42
    device: str = "auto"             # auto | cpu | cuda | mps
    eval_batch: int = 512
    eval_every: int = 1
    eval_share: float = 0.2          # pre-training skips a validation that would pass this share of its time
    threads: int = 0                 # torch CPU threads; 0 = torch's default

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> "Config":
        if self.model not in ("msm4sr", "sasrec"):
            raise InputError(f"model must be msm4sr or sasrec, got {self.model!r}")
        if self.modalities not in ("auto", "both", "text", "image"):
            raise InputError(f"modalities must be auto|both|text|image, got {self.modalities!r}")
        if self.hidden % self.heads:
            raise InputError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        if self.cmcl_negatives not in ("all", "cross"):
            raise InputError(f"cmcl_negatives must be all or cross, got {self.cmcl_negatives!r}")
        if self.softmax not in ("auto", "full", "sampled"):
            raise InputError(f"softmax must be auto|full|sampled, got {self.softmax!r}")
        if self.negative_sampler not in ("uniform", "popularity"):
            raise InputError(f"negative_sampler must be uniform or popularity, got {self.negative_sampler!r}")
        if self.optimizer not in ("adamw", "adam"):
            raise InputError(f"optimizer must be adamw or adam, got {self.optimizer!r}")
        for name in ("nip_positions", "pretrain_patience"):
            if getattr(self, name) < 0:
                raise InputError(f"{name} must be >= 0")
        if not 0 <= self.id_dropout < 1:
            raise InputError(f"id_dropout must be in [0, 1), got {self.id_dropout}")
        if self.mixup_p_fixed is not None and not 0 <= self.mixup_p_fixed <= 1:
            raise InputError(f"mixup_p_fixed must be in [0, 1], got {self.mixup_p_fixed}")
        if not 0 <= self.eval_share < 1:
            raise InputError(f"eval_share must be in [0, 1), got {self.eval_share}")
        for name in ("max_len", "layers", "heads", "hidden", "experts", "pretrain_batch",
                     "finetune_batch", "eval_batch", "cmcl_positions", "sampled_negatives"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1")
        if self.device not in ("auto", "cpu", "cuda", "mps"):
            raise InputError(f"device must be auto|cpu|cuda|mps, got {self.device!r}")
        for f in fields(self):   # NaN passes every comparison below; a list fails them with a traceback
            v = getattr(self, f.name)
            if str(f.type).startswith(("int", "float")) and v is not None and (
                    isinstance(v, bool) or not isinstance(v, (int, float))
                    or isinstance(v, float) and not math.isfinite(v)):
                raise InputError(f"{f.name} must be a finite number, got {v!r}")
        for name, (low, high) in LIMITS.items():
            if not low <= getattr(self, name) <= high:
                raise InputError(f"{name} must be in [{low}, {high}], got {getattr(self, name)!r}")
        for name in ("dropout", "attn_dropout", "adaptor_dropout", "item_drop_max"):
            if getattr(self, name) >= 1:
                raise InputError(f"{name} must be below 1, got {getattr(self, name)!r}")
        return self


# Bounds of numeric settings: far above what a real model needs (the defaults, the paper's,
# the benchmarks'), yet small enough that a crafted config or manifest cannot ask for
# terabytes. A checkpoint's size is capped again in core.checkpoint (MAX_MODEL_BYTES).
LIMITS = {
    "hidden": (1, 4096), "layers": (1, 32), "heads": (1, 64), "inner": (1, 16384),
    "max_len": (1, 4096), "pool_dim": (1, 4096), "experts": (1, 64),
    "dropout": (0, 1), "attn_dropout": (0, 1), "adaptor_dropout": (0, 1), "item_drop_max": (0, 1),
    "mixup_p_max": (0, 1), "cmcl_weight": (0, 1_000_000), "temperature": (0.001, 1000),
    "nip_positions": (0, 4096), "text_vectors": (0, 4096), "cmcl_positions": (1, 4096),
    "pretrain_epochs": (0, 100_000), "finetune_epochs": (0, 100_000),
    "pretrain_patience": (0, 100_000), "patience": (0, 100_000), "eval_every": (1, 100_000),
    "pretrain_batch": (1, 1 << 16), "finetune_batch": (1, 1 << 16), "eval_batch": (1, 1 << 16),
    "pretrain_lr": (0, 10), "finetune_lr": (0, 10), "sasrec_lr": (0, 10),
    "pretrain_weight_decay": (0, 10), "finetune_weight_decay": (0, 10), "sasrec_weight_decay": (0, 10),
    "pretrain_minutes": (0, 10_000_000), "finetune_minutes": (0, 10_000_000), "grad_clip": (0, 10 ** 9),
    "seed": (0, 2 ** 63 - 1), "threads": (0, 4096),
    "sampled_negatives": (1, 1 << 20), "full_softmax_max_items": (0, 10 ** 10),
}


_FIELDS = {f.name: f for f in fields(Config)}

# One line per setting: what `msm4sr config --list` and `train --help` print.
DESCRIPTIONS = {
    "model": "msm4sr (content + IDs, pre-trained) or sasrec (the ID-only baseline)",
    "hidden": "model width of item and sequence vectors",
    "layers": "transformer layers",
    "heads": "attention heads per layer (hidden must be a multiple)",
    "inner": "width of the transformer's feed-forward layer",
    "dropout": "hidden dropout in the transformer",
    "attn_dropout": "dropout on the attention weights",
    "max_len": "items of history the model sees (older ones are cut)",
    "modalities": "auto (whatever features the workspace has) | both | text | image",
    "pool_dim": "hidden size of the attention pooling over an item's feature vectors",
    "experts": "MoE adaptor experts per modality",
    "adaptor_dropout": "dropout inside the MoE adaptors",
    "expert_norm": "each MoE expert ends in a LayerNorm (the authors' code; measured no gain)",
    "text_vectors": "text vectors pooled per item: 1 = the title/brand/category sentence alone, "
                    "more adds description sentences; 0 = all that were built",
    "pretrain": "pre-train before fine-tuning (false: fine-tune from scratch, an ablation)",
    "item_drop_max": "pre-training drops a share p ~ U(0, this) of each window's items",
    "mixup": "complementary sequence mixup of the text and image sequences (needs both)",
    "mixup_p_max": "mixup swaps each position with p ~ U(0, this)",
    "mixup_p_fixed": "a fixed mixup p instead of U(0, mixup_p_max); none = drawn",
    "nip": "next-item prediction loss per modality in pre-training",
    "cmcl": "cross-modality contrastive loss in pre-training (needs text and image)",
    "cmcl_weight": "weight of CMCL next to NIP",
    "cmcl_negatives": "all: cross- and intra-modal negatives (the authors') | cross: cross only",
    "proj_heads": "pre-training heads that map each sequence into both item spaces",
    "temperature": "softmax temperature of every loss and of scoring",
    "nip_positions": "NIP queries per window: 0 = every target position, k = k random ones",
    "cmcl_positions": "CMCL queries per window (random positions)",
    "pretrain_epochs": "most pre-training epochs (patience usually stops it first)",
    "pretrain_patience": "pre-training stops after this many validations without gain and keeps "
                         "its best epoch (content-only valid NDCG@10); 0 = keep the last",
    "pretrain_lr": "pre-training learning rate",
    "pretrain_batch": "pre-training windows per step",
    "pretrain_weight_decay": "pre-training weight decay",
    "optimizer": "adamw: decoupled decay, none on biases, norms, embeddings | adam: L2 (paper)",
    "finetune_epochs": "most fine-tuning epochs (patience usually stops it first)",
    "finetune_lr": "fine-tuning learning rate (MSM4SR)",
    "finetune_batch": "fine-tuning windows per step (each holds up to max_len targets)",
    "finetune_weight_decay": "fine-tuning weight decay (MSM4SR)",
    "id_dropout": "MSM4SR fine-tuning: share of items whose ID embedding a step leaves out",
    "softmax": "fine-tuning loss: full softmax | sampled (in-batch + drawn negatives) | auto: by "
               "catalog size",
    "full_softmax_max_items": "softmax=auto uses the full softmax up to this many items",
    "sampled_negatives": "negatives drawn per step by the sampled softmax",
    "negative_sampler": "how the sampled softmax draws negatives: uniform | popularity",
    "sasrec_lr": "SASRec learning rate",
    "sasrec_weight_decay": "SASRec weight decay",
    "patience": "fine-tuning stops after this many validations without valid NDCG@10 gain",
    "pretrain_minutes": "wall-clock budget of pre-training, checked after each epoch; 0 = none "
                        "(--minutes sets it)",
    "finetune_minutes": "wall-clock budget of fine-tuning (and SASRec), checked after each epoch; "
                        "0 = none (--minutes sets it)",
    "grad_clip": "gradient norm clip; 0 = off",
    "seed": "random seed of the run (same seed, same run)",
    "device": "auto (CUDA, then MPS, then CPU) | cpu | cuda | mps",
    "eval_batch": "users scored at once in evaluation",
    "eval_every": "validate every this many epochs (the last epoch always validates)",
    "eval_share": "pre-training skips a due validation that would take validation past this "
                  "share of the stage's time (wall clock, so runs may differ); 0 = eval_every alone",
    "threads": "torch CPU threads; 0 = torch's default",
}

# The settings `train --help` lists first: what people change most.
COMMON = ("pretrain_minutes", "finetune_minutes", "pretrain_epochs", "finetune_epochs",
          "patience", "pretrain_patience", "modalities", "hidden", "max_len", "finetune_lr",
          "pretrain_batch", "finetune_batch", "device", "seed")


def settings() -> list[dict]:
    """Every setting: name, type, default and its one-line meaning, in Config's order."""
    base = Config()
    return [{"name": f.name, "type": str(f.type), "default": getattr(base, f.name),
             "meaning": DESCRIPTIONS.get(f.name, "")} for f in fields(Config)]

# Named presets, applied over the defaults and under a TOML file and --set.
PRESETS = {
    # the paper's and the authors' settings: Adam with L2 decay, fine-tune lr 1e-4, wd 1e-3,
    # pre-training batch 1024, the best valid pre-training epoch with RecBole's patience of 10
    "paper": {"optimizer": "adam", "finetune_lr": 1e-4, "finetune_weight_decay": 1e-3,
              "pretrain_batch": 1024, "pretrain_patience": 10, "expert_norm": True,
              "cmcl_negatives": "all", "proj_heads": False, "nip_positions": 0},
}

# What a saved config without a key meant: the behaviour from before the key existed.
_BEFORE = {"expert_norm": False, "cmcl_negatives": "cross", "proj_heads": False,
           "pretrain_patience": 0, "optimizer": "adam", "nip_positions": 4, "cmcl_positions": 4,
           "softmax": "full", "text_vectors": 0}


def _convert(key: str, value):
    """A value from TOML or a `--set` string, converted to the field's type."""
    if key not in _FIELDS:
        raise InputError(f"unknown setting {key!r}; known: {', '.join(sorted(_FIELDS))}")
    kind = str(_FIELDS[key].type)
    if isinstance(value, str):
        v = value.strip()
        if "None" in kind and v.lower() in ("none", "null", ""):
            return None
        try:
            if kind.startswith("bool"):
                if v.lower() in ("1", "true", "yes", "on"):
                    return True
                if v.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(v)
            if kind.startswith("int"):
                return int(v)
            if kind.startswith("float"):
                return float(v)
        except ValueError:
            raise InputError(f"{key}: cannot read {value!r} as {kind}") from None
        return v
    if kind.startswith("bool") and not isinstance(value, bool):
        raise InputError(f"{key}: expected true/false, got {value!r}")
    if kind.startswith("float") and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind.startswith("int") and (not isinstance(value, int) or isinstance(value, bool)):
        raise InputError(f"{key}: expected an integer, got {value!r}")
    return value


def parse_sets(pairs: list[str]) -> dict:
    """['key=value', ...] -> {key: typed value}."""
    out = {}
    for pair in pairs or ():
        if "=" not in pair:
            raise InputError(f"--set expects key=value, got {pair!r}")
        k, v = pair.split("=", 1)
        out[k.strip()] = _convert(k.strip(), v)
    return out


def load_config(toml_path=None, overrides: dict | None = None, base: Config | None = None,
                preset: str | None = None) -> Config:
    """Defaults (or `base`), then a preset, then the TOML file, then overrides (typed or strings)."""
    values = (base or Config()).to_dict()
    if preset:
        if preset not in PRESETS:
            raise InputError(f"unknown preset {preset!r}; known: {', '.join(sorted(PRESETS))}")
        values.update(PRESETS[preset])
    if toml_path:
        try:
            data = tomllib.loads(Path(toml_path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise InputError(f"cannot read config: {e}", path=toml_path) from None
        # accept a flat file or sections ([model], [train], ...): keys are unique anyway
        flat = {}
        for k, v in data.items():
            if isinstance(v, dict):
                flat.update(v)
            else:
                flat[k] = v
        values.update({k: _convert(k, v) for k, v in flat.items()})
    for k, v in (overrides or {}).items():
        values[k] = _convert(k, v)
    return Config(**values).validate()


def from_dict(d: dict) -> Config:
    """A config saved in a manifest or run; unknown keys (from newer versions) are refused.

    Keys it lacks get the behaviour they had before they existed (_BEFORE), so an older
    checkpoint builds the network it was trained with."""
    d = dict(d)
    if "pretrain_positions" in d:  # one setting then, for NIP and CMCL alike
        k = d.pop("pretrain_positions")
        d.setdefault("nip_positions", k)
        d.setdefault("cmcl_positions", k)
    for k, v in _BEFORE.items():
        d.setdefault(k, v)
    return load_config(overrides=d)


def save(cfg: Config, path: Path) -> None:
    Path(path).write_text(json.dumps(cfg.to_dict(), indent=2))


# what a resumed run may change: when and where it stops, not the model or the data it sees
RESUMABLE = ("pretrain_epochs", "finetune_epochs", "pretrain_patience", "patience", "pretrain_minutes",
             "finetune_minutes", "eval_every", "device", "threads")


def resume_overrides(saved: Config, changes: dict) -> dict:
    """The settings in `changes` that differ from a run's saved config; refuses one a resume
    cannot honour (its checkpoint was trained with the saved value)."""
    now = load_config(base=saved, overrides=changes).to_dict()
    old = saved.to_dict()
    differ = {k: now[k] for k in changes if now[k] != old[k]}
    fixed = [f"{k} {old[k]} (asked: {differ[k]})" for k in differ if k not in RESUMABLE]
    if fixed:
        raise InputError("a resumed run keeps the settings it was started with: " + ", ".join(fixed)
                         + "; start a new run to change them")
    return differ
