"""Plain tables: an interactions file (user, item, timestamp) and an optional
items file (id, title, brand, categories, text, image, tags), tab- or comma-separated,
each with a header row. `columns` maps our field names to the file's headers.
"""
from __future__ import annotations

import csv
from pathlib import Path

from core.errors import InputError
from core.importers.common import (FirstLines, TS_MAX, BadLines, Lines, Parsed, check_folder,
                                   inside, line_batches, need_id, parse_tags, read_lines, shown, to_ts)
from core.importers.rows import Rows
from core.workspace import Item

INTER_FIELDS = ("user", "item", "timestamp")
ITEM_FIELDS = ("id", "title", "brand", "categories", "text", "image", "tags")
# Tried, in order, when the caller did not map a field; the first header found wins.
ALIASES = {
    "user": ("user", "user_id", "userId", "reviewerID"),
    "item": ("item", "item_id", "itemId", "movie_id", "movieId", "asin"),
    "timestamp": ("timestamp", "ts", "time", "unixReviewTime"),
    "id": ("id", "item_id", "item", "movie_id", "asin"),
    "title": ("title",), "brand": ("brand",), "categories": ("categories", "category", "genres"),
    "text": ("text", "description"), "image": ("image",), "tags": ("tags",),
}
REQUIRED_INTER = INTER_FIELDS
REQUIRED_ITEM = ("id",)


def iter_rows(path, sep: str, encoding=None, limits=None, progress=None, lines: Lines | None = None):
    """(line number, fields) for each non-blank row, header included, read as a stream.
    CSV rows may span lines (quoted fields); a row is numbered by its first line."""
    if sep == "\t":
        lines = read_lines(path, encoding, limits, progress) if lines is None else lines
        for n, line in lines.numbered():
            yield n, line.split("\t")
        return
    at = {"line": 0, "start": None}

    def physical():
        for first, batch in line_batches(path, encoding, limits, progress, keep_blank=True):
            for k, line in enumerate(batch):
                at["line"] = first + k
                if at["start"] is None and line.strip():
                    at["start"] = first + k
                yield line + "\n"
    reader = csv.reader(physical(), strict=True)
    try:
        for fields in reader:
            start, at["start"] = at["start"], None
            if any(f.strip() for f in fields):
                yield start or at["line"], fields
    except csv.Error as e:
        start = at["start"]
        row = f" (in the row that starts on line {start})" if start and start != at["line"] else ""
        raise InputError(f"bad CSV: {e}{row}", path, at["line"]) from None


def _header(rows, path):
    for n, header in rows:
        return n, header
    raise InputError("file is empty", path)


def header_index(header: list[str], wanted: tuple[str, ...], required: tuple[str, ...],
                 columns: dict[str, str], path, line: int = 1) -> dict[str, int]:
    """field -> column index. A mapped or required column that is absent is an error."""
    names = [h.strip() for h in header]
    pos = {}
    for k, name in enumerate(names):
        pos.setdefault(name, k)
    out = {}
    for f in wanted:
        if f in columns:
            if columns[f] not in pos:
                raise InputError(f"no column {columns[f]!r} (mapped to {f!r}) in the header; "
                                 f"the header has: {shown(', '.join(names), 200)}", path, line)
            out[f] = pos[columns[f]]
            continue
        for alias in ALIASES[f]:
            if alias in pos:
                out[f] = pos[alias]
                break
        else:
            if f in required:
                raise InputError(f"no column {f!r} in the header (map yours with columns=, "
                                 f"e.g. --columns {f}=NAME); the header has: "
                                 f"{shown(', '.join(names), 200)}", path, line)
    return out


def parse_interaction(fields: list[str], idx: dict[str, int], ncols: int, path, line):
    """One interactions row -> (user, item, ts)."""
    if len(fields) != ncols:
        raise InputError(f"expected {ncols} columns, found {len(fields)}", path, line)
    return (need_id(fields[idx["user"]], "user id", path, line),
            need_id(fields[idx["item"]], "item id", path, line),
            to_ts(fields[idx["timestamp"]].strip(), path, line))


def parse_item(fields: list[str], idx: dict[str, int], ncols: int, root: Path, path, line):
    """One items row -> (Item, tags or None). The image must stay inside `root`."""
    if len(fields) != ncols:
        raise InputError(f"expected {ncols} columns, found {len(fields)}", path, line)
    get = lambda f: fields[idx[f]].strip() if f in idx else ""  # noqa: E731
    item = Item(id=need_id(get("id"), "item id", path, line), title=get("title"),
                brand=get("brand"), categories=get("categories"), text=get("text"))
    item.image = inside(root, get("image"), path, line)
    tags = parse_tags(get("tags"), path, line) if "tags" in idx else None
    return item, tags


def read_interactions(path, sep: str, columns: dict[str, str], encoding, bad: BadLines,
                      progress=None, lines: Lines | None = None,
                      limits=None) -> Rows:
    if sep == "\t" and lines is None:
        lines = read_lines(path, encoding, limits, progress)
    total = len(lines) if lines is not None else 0
    rows = iter_rows(path, sep, encoding, limits, progress, lines)
    hline, header = _header(rows, path)
    idx = header_index(header, INTER_FIELDS, REQUIRED_INTER, columns, path, hline)
    ncols = len(header)
    out = Rows()
    append = out.append
    iu, ii, it = idx["user"], idx["item"], idx["timestamp"]
    for k, (n, fields) in enumerate(rows):
        if k % 100_000 == 0:
            out.flush()   # pack the tuples read so far into compact columns
            if progress:
                progress("parse", k, total)
        # fast path for good rows; parse_interaction is the rule and names the problem
        if len(fields) == ncols:
            u, i, ts = fields[iu].strip(), fields[ii].strip(), fields[it]
            # isprintable: no control character in either id; ASCII digits only
            if u and i and (u + i).isprintable() and ts.isdigit() and ts.isascii():
                t = int(ts)
                if t <= TS_MAX:
                    append((u, i, t))
                    continue
        if not any(f.strip() for f in fields):   # blank line (spaces and tabs only)
            continue
        try:
            append(parse_interaction(fields, idx, ncols, path, n))
        except InputError as e:
            bad(e)
    if progress:
        progress("parse", total, total)
    return out


def read_items(path, sep: str, columns: dict[str, str], encoding, root: Path, bad: BadLines,
               parsed: Parsed, limits=None, progress=None) -> None:
    rows = iter_rows(path, sep, encoding, limits, progress)
    hline, header = _header(rows, path)
    idx = header_index(header, ITEM_FIELDS, REQUIRED_ITEM, columns, path, hline)
    ncols = len(header)
    first = FirstLines()
    for n, fields in rows:
        try:
            item, tags = parse_item(fields, idx, ncols, root, path, n)
            first.claim(item.id, "item id", path, n)
        except InputError as e:
            bad(e)
            continue
        parsed.items[item.id] = item
        if tags:
            parsed.tags[item.id] = tags


def parse(sources: dict, opts, progress, sep: str = "\t") -> Parsed:
    unknown = set(sources) - {"interactions", "items", "columns", "images_root"}
    if unknown:
        raise InputError(f"unknown source keys {sorted(unknown)} for tsv/csv; "
                         "use interactions, items, columns, images_root")
    columns = dict(sources.get("columns") or {})
    bad_keys = set(columns) - set(INTER_FIELDS) - set(ITEM_FIELDS)
    if bad_keys:
        raise InputError(f"unknown column fields {sorted(bad_keys)}; "
                         f"use {', '.join(INTER_FIELDS + ITEM_FIELDS)}")
    parsed = Parsed()
    bad = BadLines(opts.skip_bad_lines, parsed.skipped)
    inter, items = sources.get("interactions"), sources.get("items")
    if not inter and not items:
        raise InputError("give an interactions file, an items file, or both")
    if items:
        root = sources.get("images_root")
        root = check_folder(root) if root else Path(items).resolve().parent
        read_items(items, sep, columns, opts.encoding, root, bad, parsed, opts.limits, progress)
        parsed.sources["items"] = str(Path(items).resolve())
        parsed.sources["images_root"] = str(root)
    if columns:
        parsed.sources["columns"] = columns
    if inter:
        parsed.rows = read_interactions(inter, sep, columns, opts.encoding, bad, progress,
                                        limits=opts.limits)
        parsed.sources["interactions"] = str(Path(inter).resolve())
    parsed.has_interactions = bool(inter)
    return parsed
