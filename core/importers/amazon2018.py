"""Amazon Review Data (2018): reviews and metadata as JSON lines, plain or .gz.

reviews: {"reviewerID", "asin", "unixReviewTime", ...}
meta:    {"asin", "title", "description" (list or str), "brand", "category" (list),
          "imageURLHighRes"/"imageURL" (lists), ...}
Images come from a local folder of <asin>.<ext> files, or are downloaded
(sources["download"] = True) by the shared processing step.
"""
from __future__ import annotations

import json
from pathlib import Path

from core.errors import InputError
from core.importers.common import (BadLines, Parsed, check_folder, clean_html, image_index,
                                   iter_lines, need_id, to_ts)
from core.workspace import Item


def _json(line: str, path, n: int) -> dict:
    try:
        obj = json.loads(line)
    except ValueError as e:
        raise InputError(f"not valid JSON: {e}", path, n) from None
    except RecursionError:
        raise InputError("not valid JSON: nested too deeply", path, n) from None
    if not isinstance(obj, dict):
        raise InputError(f"expected a JSON object, found {type(obj).__name__}", path, n)
    return obj


def _str_id(obj: dict, key: str, path, n: int) -> str:
    v = obj.get(key)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        v = str(v)
    if not isinstance(v, str) or not v.strip():
        raise InputError(f"missing or empty {key!r}", path, n)
    return need_id(v, repr(key), path, n)


def _text(v) -> str:
    """A string or a list of strings (other JSON values are ignored), cleaned of HTML."""
    if isinstance(v, str):
        return clean_html(v)
    if isinstance(v, list):
        return " ".join(t for t in (clean_html(x) for x in v if isinstance(x, str)) if t)
    return ""


def parse_review_line(line: str, path, n: int) -> tuple[str, str, int]:
    obj = _json(line, path, n)
    ts = obj.get("unixReviewTime")
    if isinstance(ts, bool) or not isinstance(ts, (int, str)):
        raise InputError("missing or non-integer 'unixReviewTime'", path, n)
    return _str_id(obj, "reviewerID", path, n), _str_id(obj, "asin", path, n), to_ts(ts, path, n)


def parse_meta_line(line: str, path, n: int) -> tuple[Item, str | None]:
    """-> (item, first image URL or None)."""
    obj = _json(line, path, n)
    asin = _str_id(obj, "asin", path, n)
    cats = obj.get("category")
    cats = cats if isinstance(cats, list) else [cats] if isinstance(cats, str) else []
    cats = [clean_html(c).replace("|", "/") for c in cats if isinstance(c, str)]
    url = None
    for key in ("imageURLHighRes", "imageURL"):
        urls = obj.get(key)
        urls = [urls] if isinstance(urls, str) else urls if isinstance(urls, list) else []
        url = next((u.strip() for u in urls if isinstance(u, str) and u.strip()), None)
        if url:
            break
    item = Item(id=asin, title=_text(obj.get("title")), brand=_text(obj.get("brand")),
                categories="|".join(c for c in cats if c), text=_text(obj.get("description")))
    return item, url


def parse(sources: dict, opts, progress) -> Parsed:
    unknown = set(sources) - {"reviews", "meta", "images", "download", "allow_private"}
    if unknown:
        raise InputError(f"unknown source keys {sorted(unknown)} for amazon2018; "
                         "use reviews, meta, images, download, allow_private")
    parsed = Parsed()
    bad = BadLines(opts.skip_bad_lines, parsed.skipped)
    reviews, meta, images = sources.get("reviews"), sources.get("meta"), sources.get("images")
    if not reviews and not meta:
        raise InputError("amazon2018 needs a reviews file, a meta file, or both")
    if images and sources.get("download"):
        raise InputError("give either an images folder or download, not both")
    if meta:
        first: dict[str, tuple[int, int]] = {}
        for n, line in iter_lines(meta, opts.encoding, opts.limits, progress):
            try:
                item, url = parse_meta_line(line, meta, n)
                if item.id in first:
                    # the public meta files repeat some products verbatim; only a
                    # differing repeat is ambiguous
                    if first[item.id][1] == hash(line):
                        continue
                    raise InputError(f"duplicate asin {item.id!r} (first on line "
                                     f"{first[item.id][0]})", meta, n)
            except InputError as e:
                bad(e)
                continue
            first[item.id] = (n, hash(line))
            parsed.items[item.id] = item
            if url:
                parsed.image_urls[item.id] = url
            if n % 100_000 == 0:
                progress("parse meta", n, 0)
        parsed.sources["meta"] = str(Path(meta).resolve())
    if reviews:
        append = parsed.rows.append
        for n, line in iter_lines(reviews, opts.encoding, opts.limits, progress):
            try:
                append(parse_review_line(line, reviews, n))
            except InputError as e:
                bad(e)
            if n % 100_000 == 0:
                parsed.rows.flush()   # pack the tuples read so far into compact columns
                progress("parse", n, 0)
        parsed.sources["reviews"] = str(Path(reviews).resolve())
    parsed.has_interactions = bool(reviews)
    if images:
        folder = check_folder(images)
        parsed.image_folder = (folder, image_index(folder))
        parsed.sources["images"] = str(folder)
    return parsed
