"""`msm4sr pretrain | finetune | train | evaluate | config`.

Training flags: --model msm4sr|sasrec, --config FILE (TOML), --set key=value (repeatable),
and shortcuts --epochs/--lr/--batch-size that apply to every stage the command runs
(use --set pretrain_lr=... to touch one stage). --minutes M is the wall-clock budget of the
command, split by `split_minutes`. --progress-json prints one JSON event per
line on stdout (the app reads them); otherwise a tqdm bar goes to stderr.
SIGTERM or Ctrl-C: the current step finishes, the last completed epoch stays resumable
(`--resume --run NAME`), a "cancelled" event is printed, and the exit code is 0.
torch is imported inside the commands only, so `msm4sr info` stays fast.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from core.config import COMMON, DESCRIPTIONS, PRESETS, Config

# MSM4SR's `train` gives pre-training this share of --minutes and fine-tuning the rest:
# bench_model.py measured that split on both data sets (docs/benchmarks.md)
PRETRAIN_SHARE = 1 / 6


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return v


def _epilog() -> str:
    import textwrap
    base = Config()
    lines = ["most used settings (--set KEY=VALUE; `msm4sr config --list` prints them all):"]
    for k in COMMON:
        lines += textwrap.wrap(f"{k:<18} {str(getattr(base, k)):<6} {DESCRIPTIONS[k]}", 94,
                               initial_indent="  ", subsequent_indent=" " * 28)
    lines.append("")
    lines += textwrap.wrap(
        "--minutes M is the whole command's budget, checked after each epoch: `train` gives "
        "MSM4SR pre-training a sixth of M and fine-tuning the rest; SASRec, --set pretrain=false, "
        "`pretrain` and `finetune` give their one stage all of M. --set pretrain_minutes=... or "
        "finetune_minutes=... still wins for its stage. The final test evaluation comes on top.", 96,
        break_on_hyphens=False)
    return "\n".join(lines)


def _training_args(p, stage: str) -> None:
    p.add_argument("workspace")
    p.add_argument("--model", default=None, choices=("msm4sr", "sasrec"), help="default: msm4sr")
    p.add_argument("--preset", default=None, choices=sorted(PRESETS),
                   help="named settings over the defaults (paper: the paper's optimiser and "
                        "fine-tuning settings); --config and --set still apply on top")
    p.add_argument("--config", default=None, help="TOML file of settings")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting (repeatable), e.g. --set mixup_p_fixed=0.3")
    p.add_argument("--minutes", type=positive_float, default=None, metavar="M",
                   help="wall-clock budget of this command in minutes (split: see below)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--run", default=None, help="run name (default: model-date-time)")
    p.add_argument("--resume", action="store_true", help="continue the run named by --run")
    p.add_argument("--device", default=None, choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--progress-json", action="store_true", help="one JSON event per line on stdout")
    if stage == "finetune":
        p.add_argument("--from", dest="init_from", default=None,
                       help="a pre-trained MSM4SR model folder (default: fine-tune from scratch)")
    p.set_defaults(func=lambda a: cmd_train(a, stage))


def add_commands(sub) -> None:
    for stage, text in (("pretrain", "pre-train MSM4SR (NIP + CMCL)"),
                        ("finetune", "fine-tune (or train SASRec)"),
                        ("train", "pre-train then fine-tune (SASRec: train)")):
        _training_args(sub.add_parser(stage, help=text, description=text, epilog=_epilog(),
                                      formatter_class=argparse.RawDescriptionHelpFormatter), stage)

    p = sub.add_parser("config", help="every training setting with its default and meaning")
    p.add_argument("--list", action="store_true", help="list every setting (the default action)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("evaluate", help="full-ranking metrics of a trained model")
    p.add_argument("workspace")
    p.add_argument("--model", required=True, help="model folder (WS/models/RUN) or its manifest.json")
    p.add_argument("--json", action="store_true")
    p.add_argument("--mask-history", action="store_true", help="never rank a user's history items")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.set_defaults(func=cmd_evaluate)


def resolve_config(args, stage: str):
    from core.config import load_config, parse_sets
    over = {}
    if args.model:
        over["model"] = args.model
    if args.epochs is not None:
        over.update(pretrain_epochs=args.epochs, finetune_epochs=args.epochs)
    if args.lr is not None:
        over.update({"pretrain_lr": args.lr} if stage == "pretrain" else
                    {"finetune_lr": args.lr, "sasrec_lr": args.lr, **({"pretrain_lr": args.lr}
                                                                      if stage == "train" else {})})
    if args.batch_size is not None:
        over.update(pretrain_batch=args.batch_size, finetune_batch=args.batch_size)
    if args.device:
        over["device"] = args.device
    if args.seed is not None:
        over["seed"] = args.seed
    sets = parse_sets(args.set)
    over.update(sets)
    cfg = load_config(args.config, over, preset=args.preset)
    args.explicit = dict(over)  # what the command line named: a --resume run takes what it may of it
    if getattr(args, "minutes", None):
        budget = {k: v for k, v in split_minutes(cfg, stage, args.minutes).items() if k not in sets}
        cfg = load_config(base=cfg, overrides=budget)
        args.explicit.update(budget)
    return cfg


def split_minutes(cfg, stage: str, minutes: float) -> dict:
    """The stage budgets of `minutes` for a command (see _epilog for the rule)."""
    if stage == "pretrain":
        return {"pretrain_minutes": minutes}
    if stage == "finetune" or cfg.model == "sasrec" or not cfg.pretrain:
        return {"finetune_minutes": minutes}
    pre = minutes * PRETRAIN_SHARE
    return {"pretrain_minutes": pre, "finetune_minutes": minutes - pre}


def cmd_config(args) -> int:
    from core.config import settings
    rows = settings()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"{r['name']:<{width}}  {str(r['default']):<8}  {r['meaning']}")
    return 0


class _Bar:
    """Terminal progress: a tqdm bar per epoch and a line per epoch. Off a terminal the
    steps are progress lines instead (core.progress.LineProgress: at least one every
    MSM4SR_PROGRESS_SECONDS, default 10)."""

    def __init__(self):
        from core.progress import LineProgress
        self.bar = None
        self.lines = None if sys.stderr.isatty() else LineProgress()

    def __call__(self, e: dict) -> None:
        from tqdm import tqdm
        kind = e["event"]
        if kind == "step" and self.lines is not None:
            self.lines(f"{e['stage']} epoch {e['epoch']} step", e["step"], e["steps"],
                       f"loss {e['loss']:.4f}, {e['items_per_s']:.0f} items/s")
        elif kind == "step":
            if self.bar is None or self.bar.total != e["steps"] or e["step"] < self.bar.n:
                self.close()
                self.bar = tqdm(total=e["steps"], desc=f"{e['stage']} {e['epoch']}", unit="step",
                                file=sys.stderr, leave=False)
            self.bar.n = e["step"]
            self.bar.set_postfix(loss=f"{e['loss']:.4f}", items_s=f"{e['items_per_s']:.0f}", refresh=False)
            self.bar.refresh()
        elif kind == "epoch":
            self.close()
            v = e.get("valid") or {}
            share = e.get("valid_share")
            note = "" if share is None else (f"  (validation {e.get('valid_s', 0):.1f}s, {share:.0%} "
                                             f"of the stage)" if v else f"  (not validated; "
                                             f"validation {share:.0%} of the stage so far)")
            print(f"{e['stage']} epoch {e['epoch']}: {e['seconds']:.1f}s"
                  + "".join(f"  valid {k} {x:.4f}" for k, x in v.items()) + note, file=sys.stderr)
        elif kind == "start":
            print(f"run {e['run']} on {e['device']}", file=sys.stderr)
        elif kind == "setup":
            from core.train_plan import lines
            for line in lines(e):
                print(line, file=sys.stderr)
        elif kind == "cancelled":
            self.close()
            print(f"cancelled; resume with --resume (state: {e['checkpoint']})", file=sys.stderr)
        elif kind == "done":
            self.close()
            print(f"model written to {e['checkpoint']}", file=sys.stderr)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def finish(self):
        self.close()
        if self.lines is not None:
            self.lines.close()


def cmd_train(args, stage: str) -> int:
    from core.train import Trainer
    from core.workspace import Workspace
    cfg = resolve_config(args, stage)
    stop = {"flag": False}

    def on_signal(signum, frame):
        stop["flag"] = True

    if args.progress_json:
        def on_event(e):
            sys.stdout.write(json.dumps(e) + "\n")
            sys.stdout.flush()
    else:
        on_event = _Bar()
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    from core import distributed
    distributed.init(cfg.device)  # under torchrun: join the process group (else nothing)
    main = distributed.is_main()
    try:
        with Workspace.open(args.workspace) as ws:
            try:
                trainer = Trainer(ws, cfg, args.run, on_event, lambda: stop["flag"], args.resume,
                                  resume_changes=args.explicit if args.resume else None)
            except Exception as e:  # before the trainer can report: the app still gets an event
                if args.progress_json:
                    on_event({"event": "error", "message": str(e)})
                raise
            result = trainer.fit(stage, getattr(args, "init_from", None))
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if isinstance(on_event, _Bar):
            on_event.finish()
        distributed.cleanup()
    if not args.progress_json and not result.cancelled and main:
        print(_format_metrics(result.metrics))
    return 0


def _format_metrics(metrics: dict) -> str:
    lines = []
    for part in ("valid", "test"):
        m = metrics.get(part)
        if m:
            lines.append(f"{part:<6}" + "  ".join(f"{k} {m[k]:.4f}" for k in
                                                  ("recall@10", "ndcg@10", "ndcg@20", "mrr@10")))
    cold = metrics.get("cold")
    if cold:
        for who in ("model", "popularity"):
            m = cold[who]
            lines.append(f"cold/{who:<10} recall@10 {m['recall@10']:.4f}  ndcg@10 {m['ndcg@10']:.4f}"
                         f"  ({m['cases']} cases, {cold['candidates']} held-out items)")
    return "\n".join(lines)


def evaluate_checkpoint(ws, path, mask_history: bool = False, device: str = "auto") -> dict:
    """Load a model folder, check it against the workspace, and compute all metrics."""
    from core import checkpoint
    from core.data import load_dataset
    from core.errors import CheckpointError
    from core.evaluate import evaluate
    from core.train import pick_device
    model, cfg, manifest, folder = checkpoint.load_model(path, pick_device(device))
    checkpoint.check_items(manifest, ws.items())
    ds = load_dataset(ws, cfg, item_ids=manifest["item_ids"])
    diffs = checkpoint.feature_differences(manifest, ds.identities)
    if diffs:
        raise CheckpointError(f"{folder}: " + "; ".join(diffs))
    fp = manifest.get("dataset", {}).get("fingerprint")
    if fp and fp != ds.fingerprint:
        raise CheckpointError(f"{folder}: the workspace's interactions or cold-start items differ "
                              "from those the model was trained on (dataset fingerprint)")
    if cfg.model == "msm4sr":
        model.set_features(ds.features)
    t0 = time.perf_counter()
    out = evaluate(model, ds, cfg.max_len, batch=cfg.eval_batch, mask_history=mask_history)
    out["seconds"] = round(time.perf_counter() - t0, 3)
    out["mask_history"] = mask_history
    return out


def cmd_evaluate(args) -> int:
    from core.errors import StudioError
    from core.manifest import MANIFEST
    from core.status import run_state
    from core.workspace import Workspace
    with Workspace.open(args.workspace) as ws:
        folder = Path(args.model)
        folder = folder.parent if folder.name == MANIFEST else folder
        state = None if (folder / MANIFEST).exists() else run_state(ws, folder)
        if state:   # an unfinished run, not a broken model: say so and what to do
            raise StudioError(f"{args.model}: {state}")
        out = evaluate_checkpoint(ws, args.model, args.mask_history, args.device)
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print(_format_metrics(out))
        print(f"({out['seconds']:.1f}s; history {'masked' if args.mask_history else 'not masked'})")
    return 0
