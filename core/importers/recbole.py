"""RecBole atomic files: <name>.inter and optionally <name>.item, tab-separated,
with typed headers such as `user_id:token  item_id:token  timestamp:float`.
"""
from __future__ import annotations

from pathlib import Path

from core.errors import InputError
from core.importers.common import FirstLines, BadLines, Parsed, need_id, read_lines, to_ts
from core.workspace import Item

TYPES = ("token", "token_seq", "float", "float_seq")
# our field -> RecBole field names seen in the public data sets, first found wins
INTER_NAMES = {"user": ("user_id",), "item": ("item_id",), "timestamp": ("timestamp",)}
ITEM_NAMES = {"id": ("item_id",), "title": ("title", "movie_title", "name"),
              "brand": ("brand",), "categories": ("categories", "genre", "class", "category"),
              "text": ("description", "text", "desc")}


def parse_header(line: str, path, n: int) -> list[str]:
    """'user_id:token\\titem_id:token' -> ['user_id', 'item_id']."""
    names = []
    for col in line.split("\t"):
        name, sep, kind = col.strip().rpartition(":")
        if not sep or not name or kind not in TYPES:
            raise InputError(f"header column {col.strip()[:60]!r} is not NAME:TYPE with TYPE one "
                             f"of {', '.join(TYPES)}", path, n)
        names.append(name)
    return names


def _index(names: list[str], wanted: dict, required: tuple, path, n) -> dict[str, int]:
    out = {}
    for f, aliases in wanted.items():
        k = next((names.index(a) for a in aliases if a in names), None)
        if k is not None:
            out[f] = k
        elif f in required:
            raise InputError(f"no {aliases[0]!r} column in the header", path, n)
    return out


def _ts(text: str, path, n: int) -> int:
    """RecBole stores times as floats ('978300760.0'); whole seconds are kept."""
    text = text.strip()
    try:
        return to_ts(text, path, n)
    except InputError:
        if not text.isascii() or "_" in text:   # float() takes '1_0' and other scripts' digits
            raise InputError(f"timestamp {text[:40]!r} is not a number", path, n) from None
        try:
            v = float(text)
        except ValueError:
            raise InputError(f"timestamp {text[:40]!r} is not a number", path, n) from None
        if v != v or abs(v) >= 2 ** 63:
            raise InputError("timestamp out of range", path, n) from None
        return int(v)


def parse_inter_line(line: str, idx: dict[str, int], ncols: int, path, n: int):
    fields = line.split("\t")
    if len(fields) != ncols:
        raise InputError(f"expected {ncols} columns, found {len(fields)}", path, n)
    ts = _ts(fields[idx["timestamp"]], path, n) if "timestamp" in idx else 0
    return (need_id(fields[idx["user"]], "user id", path, n),
            need_id(fields[idx["item"]], "item id", path, n), ts)


def parse_item_line(line: str, idx: dict[str, int], ncols: int, path, n: int) -> Item:
    fields = line.split("\t")
    if len(fields) != ncols:
        raise InputError(f"expected {ncols} columns, found {len(fields)}", path, n)
    get = lambda f: fields[idx[f]].strip() if f in idx else ""  # noqa: E731
    return Item(id=need_id(get("id"), "item id", path, n), title=get("title"), brand=get("brand"),
                categories="|".join(get("categories").split()), text=get("text"))


def _body(path, encoding, limits, progress):
    """(header line number, header), the other lines as (number, text), their count."""
    lines = read_lines(path, encoding, limits, progress)
    numbered = lines.numbered()
    return next(numbered), numbered, len(lines) - 1


def parse(sources: dict, opts, progress) -> Parsed:
    unknown = set(sources) - {"inter", "item"}
    if unknown:
        raise InputError(f"unknown source keys {sorted(unknown)} for recbole; use inter, item")
    parsed = Parsed()
    bad = BadLines(opts.skip_bad_lines, parsed.skipped)
    inter, item = sources.get("inter"), sources.get("item")
    if not inter and not item:
        raise InputError("recbole needs a .inter file, a .item file, or both")
    if item:
        (hn, head), body, _ = _body(item, opts.encoding, opts.limits, progress)
        names = parse_header(head, item, hn)
        idx = _index(names, ITEM_NAMES, ("id",), item, hn)
        first = FirstLines()
        for n, line in body:
            try:
                it = parse_item_line(line, idx, len(names), item, n)
                first.claim(it.id, "item id", item, n)
            except InputError as e:
                bad(e)
                continue
            parsed.items[it.id] = it
        parsed.sources["item"] = str(Path(item).resolve())
    if inter:
        (hn, head), body, total = _body(inter, opts.encoding, opts.limits, progress)
        names = parse_header(head, inter, hn)
        idx = _index(names, INTER_NAMES, ("user", "item"), inter, hn)
        append = parsed.rows.append
        for k, (n, line) in enumerate(body):
            try:
                append(parse_inter_line(line, idx, len(names), inter, n))
            except InputError as e:
                bad(e)
            if k % 100_000 == 0:
                parsed.rows.flush()   # pack the tuples read so far into compact columns
                progress("parse", k, total)
        progress("parse", total, total)
        parsed.sources["inter"] = str(Path(inter).resolve())
    parsed.has_interactions = bool(inter)
    return parsed
