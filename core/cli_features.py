"""`msm4sr features WS`: build the text and image feature files of a workspace."""
from __future__ import annotations

import json

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_TAG = "laion2b_s34b_b79k"  # core.features.keywords.DEFAULT_TAG; kept here so --help needs no torch


def cmd_features(args) -> int:
    from core import distributed
    if distributed.launched():
        return _features_distributed(args)
    report, problems = _build(args)
    _print_report(args, report, problems)
    return 0


def _build(args):
    from core.features.build import build_features
    from core.progress import TerminalProgress
    from core.workspace import Workspace
    bar = TerminalProgress()
    with Workspace.open(args.workspace) as ws:
        try:
            report = build_features(ws, progress=bar, **_options(args))
        finally:
            bar.close()
        problems = ws.problems("image")
    return report, problems


def _options(args) -> dict:
    return dict(text_model=args.text_model, clip_model=args.clip_model,
                clip_pretrained=args.clip_pretrained, clip_weights=args.clip_weights,
                keywords_from=args.keywords_from, top_m=args.top_m, batch_size=args.batch_size,
                device=args.device, vocabulary=args.vocabulary, text_precision=args.text_precision)


def _features_distributed(args) -> int:
    """Under torchrun: every rank encodes its share of the text batches and scores its share
    of the images, rank 0 merges, reports and prints; the others only log their share (on
    stderr)."""
    import sys
    from core import distributed
    from core.features.distributed import build_features_distributed
    from core.progress import TerminalProgress, silent
    from core.workspace import Workspace
    distributed.init(args.device or "auto")
    try:
        bar = TerminalProgress() if distributed.is_main() else silent
        with Workspace.open(args.workspace) as ws:
            try:
                report, mine = build_features_distributed(ws, progress=bar, **_options(args))
            finally:
                if bar is not silent:
                    bar.close()
            problems = ws.problems("image") if report is not None else []
        print(f"msm4sr features: rank {distributed.rank()} of {distributed.world_size()} "
              f"encoded {mine.text_computed} text items and scored {mine.image_computed} "
              f"image items", file=sys.stderr, flush=True)
    finally:
        distributed.cleanup()
    if report is not None:
        _print_report(args, report, problems)
    return 0


def _print_report(args, report, problems) -> None:
    if args.json:
        out = report.to_dict()
        if args.report:
            out["problems"] = [{"item": i, "problem": p} for i, _, p in problems]
        print(json.dumps(out, indent=2))
        return
    print(f"text features   {report.text_items:,} items ({report.text_computed:,} encoded, "
          f"{report.text_items - report.text_computed:,} reused)")
    if report.image_source:
        print(f"image features  {report.image_items:,} items from {report.image_source} "
              f"({report.image_computed:,} computed); {len(report.images_missing):,} without an "
              f"image, {len(report.images_failed):,} failed")
    if report.clip_message:
        print(f"image features  none: {report.clip_message}")
    print("seconds         " + ", ".join(f"{k} {v:.1f}" for k, v in report.seconds.items()))
    if args.report:
        for item, _, reason in problems:
            print(f"  {item}\t{reason}")
    elif report.images_missing or report.images_failed:
        print("(--report lists the items without a usable image)")


def add_commands(sub) -> None:
    p = sub.add_parser("features", help="build text (Sentence-BERT) and image (CLIP keyword) features")
    p.add_argument("workspace")
    p.add_argument("--text-model", metavar="NAME_OR_PATH", default=None,
                   help="a sentence-transformers model name or folder (default: the bundled "
                        "all-MiniLM-L6-v2)")
    p.add_argument("--clip-model", default=DEFAULT_MODEL, help=f"open_clip architecture "
                                                               f"(default {DEFAULT_MODEL})")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--clip-pretrained", metavar="TAG", default=DEFAULT_TAG,
                   help=f"open_clip weights tag (default {DEFAULT_TAG}; needs them downloaded)")
    g.add_argument("--clip-weights", metavar="FILE", default=None,
                   help="a local CLIP weights file (.safetensors only)")
    p.add_argument("--keywords-from", choices=("clip", "catalog-tags", "none"), default="clip",
                   help="image keywords from CLIP, from the catalog's own tags, or none")
    p.add_argument("--vocabulary", metavar="FILE", default=None,
                   help="base keyword list, one word a line (default: the shipped "
                        "assets/vocabulary.txt); the catalog's frequent words are added")
    p.add_argument("--top-m", type=int, default=15, help="keywords per image (default 15)")
    p.add_argument("--batch-size", type=int, default=64, help="items per batch (default 64)")
    p.add_argument("--device", choices=("cpu", "cuda", "mps"), default=None)
    p.add_argument("--text-precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="Sentence-BERT arithmetic on the CPU (default auto: bf16 where the CPU "
                        "has native bf16, about 2x faster at cosine >= 0.9999 to fp32)")
    p.add_argument("--report", action="store_true", help="list items without a usable image")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_features)
