"""`msm4sr map | similar | explain | compare`: the explore tools of core.explore.

--model takes a model folder (or its manifest.json), or the name of a folder in WS/models.
--json prints one JSON object on stdout. torch is imported inside the commands only.
"""
from __future__ import annotations

import json
from pathlib import Path

from core.errors import InputError


def _model_arg(p, many: bool = False, required: bool = True) -> None:
    if many:
        p.add_argument("--models", required=True,
                       help="two or three comma-separated model folders (or names in WS/models)")
    else:
        p.add_argument("--model", required=required,
                       help="model folder, its manifest.json, or a name in WS/models")
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--json", action="store_true", help="machine-readable output")


def add_commands(sub) -> None:
    p = sub.add_parser("map", help="2-D map of a model's item vectors (UMAP or PCA), cached per model")
    p.add_argument("workspace")
    _model_arg(p)
    p.add_argument("--out", required=True, help="CSV file: item_id,x,y,title,cold,new,popularity,category")
    p.add_argument("--png", default=None, help="also draw the map to this PNG")
    p.add_argument("--colour", "--color", default="category", choices=("category", "popularity", "cold", "new"))
    p.add_argument("--method", default="auto", choices=("auto", "umap", "pca"),
                   help="auto: UMAP up to 20,000 items, PCA above (default)")
    p.add_argument("--refresh", action="store_true", help="recompute even when cached")
    p.add_argument("--seed", type=int, default=None, help="reproducible UMAP (single-threaded)")
    p.set_defaults(func=cmd_map)

    p = sub.add_parser("similar", help="nearest items to one item")
    p.add_argument("workspace")
    _model_arg(p, required=False)   # only --by model needs one
    p.add_argument("--item", required=True)
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--by", default="model", choices=("model", "text", "keywords"),
                   help="model: cosine of the model's item vectors; text: of the text features; "
                        "keywords: keyword overlap (Jaccard)")
    p.set_defaults(func=cmd_similar)

    p = sub.add_parser("explain", help="why the model ranks --target after --items")
    p.add_argument("workspace")
    _model_arg(p)
    p.add_argument("--items", required=True, help="comma-separated item ids, oldest first")
    p.add_argument("--target", required=True, help="the recommended item to explain")
    p.add_argument("--top", type=int, default=3, help="contributors whose shared words are listed")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("compare", help="top-k of two or three models side by side, and their metrics")
    p.add_argument("workspace")
    _model_arg(p, many=True)
    p.add_argument("--items", required=True, help="comma-separated item ids, oldest first")
    p.add_argument("-k", type=int, default=10)
    p.set_defaults(func=cmd_compare)


def _items(text: str) -> list[str]:
    items = [i.strip() for i in text.split(",") if i.strip()]
    if not items:
        raise InputError("--items: give at least one item id")
    return items


def model_path(ws, name: str) -> Path:
    """A model folder: the path as given when it exists, else WS/models/NAME."""
    p = Path(name)
    if p.exists() or not (ws.models_dir / name).exists():
        return p
    return ws.models_dir / name


def _load(ws, name: str, device: str):
    from core.recommend import Recommender
    return Recommender.load(model_path(ws, name), ws, device=device)


def _print(obj, as_json: bool, text) -> None:
    print(json.dumps(obj, indent=1) if as_json else text())


def cmd_map(args) -> int:
    from core.explore.map import item_map, map_rows, write_csv, write_png
    from core.workspace import Workspace
    with Workspace.open(args.workspace) as ws:
        rec = _load(ws, args.model, args.device)
        m = item_map(ws, rec, args.method, refresh=args.refresh, seed=args.seed)
        rows = map_rows(ws, m)
    write_csv(rows, args.out)
    if args.png:
        write_png(rows, args.png, args.colour)
    out = dict(m.to_dict(), csv=str(args.out), png=args.png)
    _print(out, args.json, lambda: (f"{len(rows)} items mapped with {m.method} "
                                    f"({'from the cache' if m.cached else f'{m.seconds:.1f}s'}) -> {args.out}"
                                    + (f", {args.png}" if args.png else "")))
    return 0


def cmd_similar(args) -> int:
    from core.explore.similar import similar
    from core.workspace import Workspace
    with Workspace.open(args.workspace) as ws:
        if args.by == "model" and not args.model:
            raise InputError("similar --by model: give the model with --model")
        rec = _load(ws, args.model, args.device) if args.by == "model" else None
        found = similar(ws, rec, args.item, k=args.k, by=args.by)
    _print({"item": args.item, "by": args.by, "similar": [n.to_dict() for n in found]}, args.json,
           lambda: "\n".join(f"{r:>3}. {n.item_id:<12} {n.score:7.4f}  {n.title}"
                             + (f"  [{', '.join(n.shared[:5])}]" if n.shared else "")
                             for r, n in enumerate(found, 1)))
    return 0


def cmd_explain(args) -> int:
    from core.explore.explain import explain
    from core.workspace import Workspace
    with Workspace.open(args.workspace) as ws:
        rec = _load(ws, args.model, args.device)
        e = explain(ws, rec, _items(args.items), args.target, top=args.top)

    def text():
        lines = [f"{e.target} {e.title}: score {e.score:.4f}, rank {e.rank}",
                 "  pos  item          drop  attention  title"]
        for c in e.contributions:
            drop = "     -" if c.drop is None else f"{c.drop:+8.4f}"
            att = "    -" if c.attention is None else f"{c.attention:9.3f}"
            lines.append(f"  {c.position:>3}  {c.item_id:<10} {drop} {att}  {c.title}")
        for s in e.shared:
            lines.append(f"  shares with {s.item_id} ({s.title}): keywords {', '.join(s.keywords) or '-'}; "
                         f"words {', '.join(s.words) or '-'}")
        return "\n".join(lines)
    _print(e.to_dict(), args.json, text)
    return 0


def cmd_compare(args) -> int:
    from core.explore.compare import compare, model_names
    from core.workspace import Workspace
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    with Workspace.open(args.workspace) as ws:
        recs = [_load(ws, n, args.device) for n in names]
        labels = model_names([r.folder for r in recs])
        c = compare(ws, dict(zip(labels, recs)), _items(args.items), k=args.k)

    def text():
        w = min(32, max(12, *(len(n) for n in labels), *(len(i) + 1 for t in c.top.values() for i, _ in t)))
        lines = ["rank  " + "  ".join(f"{n:<{w}}" for n in labels)]
        for r in range(c.k):
            cells = []
            for n in labels:
                t = c.top[n]
                if r < len(t):
                    i = t[r][0]
                    mark = "*" if all(i in {x for x, _ in c.top[o]} for o in labels) else " "
                    cells.append(f"{(i[:w - 2] + '…' if len(i) > w - 1 else i) + mark:<{w}}")
                else:
                    cells.append(" " * w)
            lines.append(f"{r + 1:>4}  " + "  ".join(cells))
        lines.append("(* in every top-%d)  overlap: " % c.k + ", ".join(f"{k} {v}" for k, v in c.overlap.items()))
        lines.append("")
        parts = ("valid", "test", "test_popularity", "cold", "cold_popularity")
        lines.append(f"{'model':<{w}}  " + "  ".join(f"{p.replace('_', ' '):>16}" for p in parts))
        lines.append(f"{'(recall/ndcg@10)':<{w}}")
        for n in labels:
            m = c.metrics[n]
            cell = lambda d: "-" if d is None else "/".join(  # noqa: E731
                "-" if d[x] is None else f"{d[x]:.4f}" for x in ("recall@10", "ndcg@10"))
            lines.append(f"{n:<{w}}  " + "  ".join(f"{cell(m[p]):>16}" for p in parts)
                         + ("" if m["evaluated"] else "  (no metrics yet: msm4sr evaluate)"))
        return "\n".join(lines)
    _print(c.to_dict(), args.json, text)
    return 0
