"""`msm4sr recommend`: top-k items after a sequence, as text, JSON or CSV.

The sequence comes from --items (comma-separated, repeatable) or --items-file (one id a
line: long histories, and ids that contain commas). The history's own items are left
out of the list unless the catalog has repeat interactions (a user who bought an item
twice): there, buying it again is a real outcome. --exclude-history/--include-history
choose explicitly.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from core.errors import InputError

FORMATS = ("text", "json", "csv")
CSV_HEADER = ("rank", "item_id", "title", "score")


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {v}")
    return v


def add_sequence_args(p) -> None:
    """--items / --items-file, for every command that takes a sequence."""
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--items", action="append", metavar="IDS",
                   help="comma-separated item ids, oldest first (repeatable)")
    g.add_argument("--items-file", metavar="FILE",
                   help="item ids one per line, oldest first (blank lines are skipped)")


def sequence_from_args(args, ws) -> list[str]:
    """The sequence of --items or --items-file; every id must be in the workspace."""
    if args.items_file:
        path = Path(args.items_file)
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read the items file: {e}", path=path) from None
        where = [(line.strip(), f"{path}:{n}") for n, line in enumerate(lines, 1) if line.strip()]
        if not where:
            raise InputError(f"{path}: no item ids (one id a line)")
    else:
        where = [(i.strip(), f"--items item {n}") for n, i in
                 enumerate((i for part in args.items for i in part.split(",") if i.strip()), 1)]
        if not where:
            raise InputError("--items: give at least one item id")
    for item, place in where:
        if ws.item(item) is None:
            raise InputError(f"{place}: unknown item {item!r}: not in the workspace")
    return [i for i, _ in where]


def history_repeats(ws) -> bool:
    """Whether some user has interacted with one item more than once."""
    return ws.db.execute("SELECT 1 FROM interactions GROUP BY user, item HAVING COUNT(*) > 1 "
                         "LIMIT 1").fetchone() is not None


def render(rows: list[dict], fmt: str, meta: dict) -> str:
    if fmt == "json":
        return json.dumps({**meta, "recommendations": rows}, indent=1) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(CSV_HEADER)
        w.writerows((r["rank"], r["item"], r["title"], r["score"]) for r in rows)
        return buf.getvalue()
    return "".join(f"{r['rank']:>3}. {r['item']:<12} {r['score']:9.4f}  {r['title']}\n" for r in rows)


def cmd_recommend(args) -> int:
    from core.recommend import Recommender
    from core.workspace import Workspace
    fmt = "json" if args.json else args.format
    with Workspace.open(args.workspace) as ws:
        items = sequence_from_args(args, ws)
        exclude = args.exclude_history
        why = "chosen"
        if exclude is None:
            exclude = not history_repeats(ws)
            why = "the catalog has no repeat interactions" if exclude else \
                "the catalog has repeat interactions"
        rec = Recommender.load(args.model, ws)
        top = rec.recommend(items, k=args.k, exclude=items if exclude else ())
        rows = [{"rank": r, "item": i, "title": (it.title if (it := ws.item(i)) else ""),
                 "score": round(s, 5)} for r, (i, s) in enumerate(top, 1)]
    meta = {"sequence": items, "k": args.k, "exclude_history": exclude}
    text = render(rows, fmt, meta)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {len(rows)} recommendations to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    if fmt == "text":
        flag = "--include-history" if exclude else "--exclude-history"
        print(f"(history {'left out' if exclude else 'kept'}: {why}; {flag} to change"
              + (f"; {len(rows)} of the {args.k} asked: the catalog has no more" if len(rows) < args.k
                 else "") + ")", file=sys.stderr)
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("recommend", help="top-k items after a sequence (text, JSON or CSV)")
    p.add_argument("workspace")
    p.add_argument("--model", required=True, help="model folder (WS/models/RUN) or its manifest.json")
    add_sequence_args(p)
    p.add_argument("-k", type=positive_int, default=10,
                   help="how many items (default 10; more than the catalog holds gives them all)")
    h = p.add_mutually_exclusive_group()
    h.add_argument("--exclude-history", dest="exclude_history", action="store_true", default=None,
                   help="leave the sequence's own items out (default when no user repeats an item)")
    h.add_argument("--include-history", dest="exclude_history", action="store_false",
                   help="let the sequence's own items be recommended again")
    p.add_argument("--format", choices=FORMATS, default="text",
                   help="text (default), json, or csv with the header rank,item_id,title,score")
    p.add_argument("--json", action="store_true", help="the same as --format json")
    p.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    p.set_defaults(func=cmd_recommend)
