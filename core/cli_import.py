"""`msm4sr import`: read a catalog into a workspace (created when missing).

By default 5 % of the items are held out as cold-start items (COLD_SHARE): cold start is
what the tool is for, and without held-out items there is no cold-start evaluation.
The library's ImportOptions keeps 0 (benchmark caches depend on it); this is the command's."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from core.errors import InputError


def _columns(text: str | None) -> dict[str, str]:
    """'user=uid,item=iid' -> {'user': 'uid', 'item': 'iid'}."""
    out = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError(f"--columns: expected FIELD=HEADER, got {part!r}")
        out[key.strip()] = value.strip()
    return out


COLD_SHARE = 0.05

FLAGS = {  # the source options each format reads
    "tsv": ("interactions", "items", "columns", "images_root"),
    "movielens": ("movies", "ratings", "interactions", "posters"),
    "amazon2018": ("reviews", "meta", "images", "download_images", "allow_private_urls"),
    "recbole": ("inter", "item"),
}
FLAGS["csv"] = FLAGS["tsv"]


def sources_from_args(args) -> dict:
    fmt = args.format
    unused = sorted({f for flags in FLAGS.values() for f in flags} - set(FLAGS[fmt]))
    given = [f for f in unused if getattr(args, f)]
    if given:
        raise InputError(f"--format {fmt} does not use "
                         f"{', '.join('--' + f.replace('_', '-') for f in given)}")
    if fmt in ("tsv", "csv"):
        return {"interactions": args.interactions, "items": args.items,
                "columns": _columns(args.columns), "images_root": args.images_root}
    if fmt == "movielens":
        return {"movies": args.movies, "ratings": args.ratings or args.interactions,
                "posters": args.posters}
    if fmt == "amazon2018":
        return {"reviews": args.reviews, "meta": args.meta, "images": args.images,
                "download": args.download_images, "allow_private": args.allow_private_urls}
    return {"inter": args.inter, "item": args.item}


def cmd_import(args) -> int:
    from core.importers import ImportOptions, import_catalog
    from core.progress import TerminalProgress
    from core.workspace import Workspace
    opts = ImportOptions(kcore=args.kcore, dedup=not args.no_dedup, cold_share=args.cold_share,
                         seed=args.seed, skip_bad_lines=args.skip_bad_lines,
                         encoding=args.encoding)
    progress = TerminalProgress(enabled=None if not args.json else False)
    path = Path(args.workspace)
    fresh = not path.exists()
    try:
        with Workspace.create(path) as ws:
            try:
                report = import_catalog(ws, args.format, sources_from_args(args), opts, progress)
            finally:
                progress.close()
    except BaseException:
        if fresh:   # do not leave behind an empty workspace this command created
            shutil.rmtree(path, ignore_errors=True)
        raise
    if args.json:
        print(json.dumps({**report.to_dict(), "cold_share": args.cold_share}, indent=2))
        return 0
    print(f"imported {report.users:,} users, {report.items:,} items, "
          f"{report.interactions:,} interactions in {report.seconds:.1f} s")
    print(cold_line(report.cold_items, report.items, args.cold_share, args.workspace))
    if report.items_without_image:
        shown = ", ".join(report.items_without_image[:10])
        more = len(report.items_without_image) - 10
        print(f"items without image: {len(report.items_without_image):,} ({shown}"
              f"{f', and {more:,} more' if more > 0 else ''})")
    if report.download_failures:
        print(f"image downloads failed: {len(report.download_failures):,}")
    if report.skipped_lines:
        print(f"skipped lines: {len(report.skipped_lines):,}")
        for line in report.skipped_lines[:20]:
            print(f"  {line}")
        if len(report.skipped_lines) > 20:
            print(f"  ... and {len(report.skipped_lines) - 20:,} more (see --json)")
    return 0


def cold_line(cold: int, items: int, share: float, ws) -> str:
    """What the import held out as cold-start items, and what that means."""
    if share > 0 and cold:
        return (f"cold-start items: {cold:,} of {items:,} held out of training (--cold-share "
                f"{share:g}); they are scored from content alone and evaluated as cold-start "
                f"cases (`msm4sr items {ws} --cold` lists them)")
    if share > 0:
        return (f"cold-start items: none held out (--cold-share {share:g} of {items:,} items "
                f"rounds to 0), so there is no cold-start evaluation")
    if cold:
        return f"cold-start items: {cold:,} kept from an earlier import (--cold-share 0)"
    return "cold-start items: none held out (--cold-share 0), so there is no cold-start evaluation"


def add_commands(sub) -> None:
    from core.importers import FORMATS
    p = sub.add_parser("import", help="import a catalog (interactions, items, images)")
    p.add_argument("workspace", help="workspace folder (created when missing)")
    p.add_argument("--format", required=True, choices=FORMATS)
    g = p.add_argument_group("tsv / csv")
    g.add_argument("--interactions", metavar="F", help="user,item,timestamp table with a header")
    g.add_argument("--items", metavar="F", help="id,title,brand,categories,text,image[,tags] table")
    g.add_argument("--columns", metavar="MAP", help="our field=their header, e.g. user=uid,item=iid")
    g.add_argument("--images-root", metavar="D", help="folder image paths are relative to "
                                                      "(default: the items file's folder)")
    g = p.add_argument_group("movielens")
    g.add_argument("--movies", metavar="F", help="movies.dat")
    g.add_argument("--ratings", metavar="F", help="ratings.dat or an interactions table")
    g.add_argument("--posters", metavar="D", help="folder of <MovieID>.jpg")
    g = p.add_argument_group("amazon2018")
    g.add_argument("--reviews", metavar="F", help="reviews JSON lines (.gz allowed)")
    g.add_argument("--meta", metavar="F", help="metadata JSON lines (.gz allowed)")
    g.add_argument("--images", metavar="D", help="folder of <asin>.jpg/.png/.webp")
    g.add_argument("--download-images", action="store_true",
                   help="download each item's first image URL into WORKSPACE/images")
    g.add_argument("--allow-private-urls", action="store_true",
                   help="let downloads reach loopback, link-local and private addresses "
                        "(refused by default; for a server on this machine or network)")
    g = p.add_argument_group("recbole")
    g.add_argument("--inter", metavar="F", help="<name>.inter atomic file")
    g.add_argument("--item", metavar="F", help="<name>.item atomic file")
    g = p.add_argument_group("processing")
    g.add_argument("--kcore", type=int, default=5, help="k-core filter (default 5; 0 or 1: off)")
    g.add_argument("--no-dedup", action="store_true", help="keep repeated (user, item) pairs")
    g.add_argument("--cold-share", type=float, default=COLD_SHARE,
                   help=f"share of items held out of training as cold-start items (default "
                        f"{COLD_SHARE:g}; 0: no new split, an earlier import's flags are kept)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--skip-bad-lines", action="store_true",
                   help="skip and list bad lines instead of stopping at the first")
    g.add_argument("--encoding", metavar="E", help="text encoding (default UTF-8; movies.dat "
                                                   "Latin-1)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_import)
