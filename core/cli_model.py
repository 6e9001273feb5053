"""`msm4sr pretrain | finetune | train | evaluate | recommend`.

Training flags: --model msm4sr|sasrec, --config FILE (TOML), --set key=value (repeatable),
and shortcuts --epochs/--lr/--batch-size that apply to every stage the command runs
(use --set pretrain_lr=... to touch one stage). --progress-json prints one JSON event per
line on stdout (the app reads them); otherwise a tqdm bar goes to stderr.
SIGTERM or Ctrl-C: the current step finishes, the last completed epoch stays resumable
(`--resume --run NAME`), a "cancelled" event is printed, and the exit code is 0.
torch is imported inside the commands only, so `msm4sr info` stays fast.
"""
from __future__ import annotations

import json
import signal
import sys
import time

from core.config import PRESETS
from core.errors import InputError


def _training_args(p, stage: str) -> None:
    p.add_argument("workspace")
    p.add_argument("--model", default=None, choices=("msm4sr", "sasrec"), help="default: msm4sr")
    p.add_argument("--preset", default=None, choices=sorted(PRESETS),
                   help="named settings over the defaults (paper: the paper's optimiser and "
                        "fine-tuning settings); --config and --set still apply on top")
    p.add_argument("--config", default=None, help="TOML file of settings")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting (repeatable), e.g. --set mixup_p_fixed=0.3")
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
    _training_args(sub.add_parser("pretrain", help="pre-train MSM4SR (NIP + CMCL)"), "pretrain")
    _training_args(sub.add_parser("finetune", help="fine-tune (or train SASRec)"), "finetune")
    _training_args(sub.add_parser("train", help="pre-train then fine-tune (SASRec: train)"), "train")

    p = sub.add_parser("evaluate", help="full-ranking metrics of a trained model")
    p.add_argument("workspace")
    p.add_argument("--model", required=True, help="model folder (WS/models/RUN) or its manifest.json")
    p.add_argument("--json", action="store_true")
    p.add_argument("--mask-history", action="store_true", help="never rank a user's history items")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("recommend", help="top-k items after a sequence")
    p.add_argument("workspace")
    p.add_argument("--model", required=True, help="model folder (WS/models/RUN) or its manifest.json")
    p.add_argument("--items", required=True, help="comma-separated item ids, oldest first")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_recommend)


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
    over.update(parse_sets(args.set))
    return load_config(args.config, over, preset=args.preset)


class _Bar:
    """Terminal progress: a tqdm bar per epoch and a line per epoch."""

    def __init__(self):
        self.bar = None

    def __call__(self, e: dict) -> None:
        from tqdm import tqdm
        kind = e["event"]
        if kind == "step":
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
            print(f"{e['stage']} epoch {e['epoch']}: {e['seconds']:.1f}s"
                  + "".join(f"  valid {k} {x:.4f}" for k, x in v.items()), file=sys.stderr)
        elif kind == "start":
            print(f"run {e['run']} on {e['device']}", file=sys.stderr)
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
                trainer = Trainer(ws, cfg, args.run, on_event, lambda: stop["flag"], args.resume)
            except Exception as e:  # before the trainer can report: the app still gets an event
                if args.progress_json:
                    on_event({"event": "error", "message": str(e)})
                raise
            result = trainer.fit(stage, getattr(args, "init_from", None))
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if isinstance(on_event, _Bar):
            on_event.close()
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
    from core.workspace import Workspace
    with Workspace.open(args.workspace) as ws:
        out = evaluate_checkpoint(ws, args.model, args.mask_history, args.device)
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print(_format_metrics(out))
        print(f"({out['seconds']:.1f}s; history {'masked' if args.mask_history else 'not masked'})")
    return 0


def cmd_recommend(args) -> int:
    from core.recommend import Recommender
    from core.workspace import Workspace
    items = [i.strip() for i in args.items.split(",") if i.strip()]
    if not items:
        raise InputError("--items: give at least one item id")
    with Workspace.open(args.workspace) as ws:
        rec = Recommender.load(args.model, ws)
        top = rec.recommend(items, k=args.k)
        rows = [{"item": i, "score": round(s, 5), "title": (ws.item(i).title if ws.item(i) else "")}
                for i, s in top]
    if args.json:
        print(json.dumps({"sequence": items, "recommendations": rows}, indent=1))
    else:
        for r, row in enumerate(rows, 1):
            print(f"{r:>3}. {row['item']:<12} {row['score']:9.4f}  {row['title']}")
    return 0
