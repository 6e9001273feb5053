"""`msm4sr items`: list a workspace's items, its cold-start and new ones, or a search.

Cold items are held out of every training sequence by the import's cold-start split and
come back as cold-start test cases; new items were added by hand (`new:N`) and were never
in any data. The search matches as the app's catalog search does: every word, any case,
as the start of a word of the id, title, categories or first SEARCH_TEXT_CHARS of the text.
"""
from __future__ import annotations

import argparse
import json
import sys

from core.search import SEARCH_TEXT_CHARS  # noqa: F401  (as the app's search box)
WHAT = {"cold": "cold-start items (held out of training by the import's cold-start split; "
                "scored from their content alone)",
        "new": "new items (added by hand, never in the data; scored from their content alone)",
        None: "items"}


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected 0 or a positive whole number, got {text!r}")
    return int(text)


def find_items(ws, which: str | None = None, search: str = "") -> list[dict]:
    """Items of the workspace (all, cold or new); with `search`, those holding every word
    of it as a word prefix, best first (the workspace's FTS5 index, core/search.py)."""
    cond = {"cold": "cold=1", "new": "is_new=1", None: ""}[which]
    pop = ws.popularity()
    if search.strip():      # text without any word (only punctuation) matches nothing
        found = (ws.item(i) for i in ws.search(search, cond))
    else:
        found = ws.items(f"WHERE {cond}" if cond else "")
    out = []
    for it in found:
        out.append({"id": it.id, "title": it.title, "categories": it.categories,
                    "cold": it.cold, "new": it.is_new, "interactions": pop.get(it.id, 0),
                    "image": it.image or ""})
    return out


def cmd_items(args) -> int:
    from core.workspace import Workspace
    which = "cold" if args.cold else "new" if args.new else None
    with Workspace.open(args.workspace) as ws:
        rows = find_items(ws, which, args.search or "")
        total_items = ws.counts()["items"]
    shown = rows[:args.limit] if args.limit else rows
    if args.json:
        print(json.dumps({"which": which or "all", "search": args.search or "", "total": len(rows),
                          "shown": len(shown), "items": shown}, indent=1))
        return 0
    what = WHAT[which] + (f" matching {args.search!r}" if args.search else "")
    print(f"{len(rows):,} {what}, of {total_items:,} in the workspace")
    if shown:
        w = max(len(r["id"]) for r in shown)
        print(f"{'id':<{w}}  {'inter.':>6}  {'flags':<8}  title")
        for r in shown:
            flags = ",".join(f for f in ("cold", "new") if r[f]) or "-"
            print(f"{r['id']:<{w}}  {r['interactions']:>6}  {flags:<8}  {r['title']}")
    if len(shown) < len(rows):
        print(f"... and {len(rows) - len(shown):,} more (--limit 0 lists all)", file=sys.stderr)
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("items", help="list items: cold-start, new, or matching a search")
    p.add_argument("workspace")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--cold", action="store_true", help="only cold-start (held-out) items")
    g.add_argument("--new", action="store_true", help="only items added by hand (new:N)")
    p.add_argument("--search", metavar="TEXT", help="every word, as a word prefix, in the id, title, categories "
                                                       "or text")
    p.add_argument("--limit", type=_count, default=50, metavar="N", help="list at most N (default 50; "
                                                                      "0: all)")
    p.add_argument("--json", action="store_true", help="machine-readable output (honours --limit)")
    p.set_defaults(func=cmd_items)
