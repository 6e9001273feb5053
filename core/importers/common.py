"""Pieces every importer shares: reading files safely (core.importers.reading),
collecting bad lines, resolving image paths without leaving the folder the user
chose, cleaning HTML.
"""
from __future__ import annotations

import html
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import InputError
from core.importers.reading import (Lines, ReadLimits, check_file, iter_lines, line_batches,  # noqa: F401
                                    read_lines, shown)
from core.importers.rows import Rows
from core.workspace import Item

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp")
TS_MIN, TS_MAX = -(2 ** 63), 2 ** 63 - 1  # SQLite INTEGER range


@dataclass
class Parsed:
    """What a format parser hands to the shared processing step."""
    rows: Rows = field(default_factory=Rows)   # (user, item, timestamp) in file order, compact
    items: dict[str, Item] = field(default_factory=dict)
    tags: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    image_urls: dict[str, str] = field(default_factory=dict)         # item -> first URL
    skipped: list[str] = field(default_factory=list)
    has_interactions: bool = True
    image_folder: tuple | None = None    # (folder, image_index(folder)): images named by item id
    sources: dict[str, str] = field(default_factory=dict)


class BadLines:
    """Raise the first bad line, or (skip_bad_lines) record it and go on."""

    def __init__(self, skip: bool, out: list[str]):
        self.skip, self.out = skip, out

    def __call__(self, err: InputError) -> None:
        if not self.skip:
            raise err
        self.out.append(str(err))


# ---- reading ---------------------------------------------------------------
class FirstLines(dict):
    """id -> the line it first appeared on. A second appearance names both lines."""

    def claim(self, key: str, what: str, path, line: int) -> None:
        if key in self:
            raise InputError(f"duplicate {what} {key!r} (first on line {self[key]})", path, line)
        self[key] = line


def check_folder(path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise InputError("folder not found" if not path.exists() else "expected a folder", path)
    return path.resolve()


# ---- values ----------------------------------------------------------------
_INT = re.compile(r"[+-]?[0-9]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def to_ts(text, path, line) -> int:
    """An integer Unix time within SQLite's range: ASCII digits with an optional sign (int()
    alone would also take '1_000' and other scripts' digits such as '١٢٣')."""
    if isinstance(text, int) and not isinstance(text, bool):
        v = text
    elif isinstance(text, str) and _INT.fullmatch(text.strip()):
        v = int(text)
    else:
        raise InputError(f"timestamp {str(text)[:40]!r} is not an integer", path, line)
    if not TS_MIN <= v <= TS_MAX:
        raise InputError("timestamp out of range", path, line)
    return v


def need_id(text: str, what: str, path, line) -> str:
    """A stripped, non-empty id without control characters (a NUL would store 'i\\x001' and
    show it as a second 'i1')."""
    text = text.strip()
    if not text:
        raise InputError(f"empty {what}", path, line)
    bad = _CONTROL.search(text)
    if bad:
        raise InputError(f"{what} {shown(text, 40)} holds a control character "
                         f"({bad.group()!r} at position {bad.start()})", path, line)
    return text


_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


def clean_html(text: str) -> str:
    """Catalog text often carries HTML: strip tags, decode entities, tidy spaces."""
    text = _TAG.sub(" ", text)
    text = _TAG.sub(" ", html.unescape(text))   # entities that encoded tags
    return _SPACE.sub(" ", text).strip()


def parse_tags(text: str, path, line) -> list[tuple[str, float]]:
    """'word:score|word:score' or 'word|word' (score 1.0). A part whose text after
    the last ':' is not a number is a word with a colon in it."""
    out = []
    for part in text.split("|"):
        part = part.strip()
        if not part:
            continue
        word, score = part, 1.0
        if ":" in part:
            head, tail = part.rsplit(":", 1)
            try:
                score = float(tail)
            except ValueError:
                pass
            else:
                word = head.strip()
                if not math.isfinite(score):
                    raise InputError(f"tag {part[:40]!r} has a score that is not finite", path, line)
        if not word:
            raise InputError(f"tag {part[:40]!r} has no word", path, line)
        out.append((word, score))
    return out


# ---- images ----------------------------------------------------------------
def inside(root: Path, value: str, path, line, item: str | None = None) -> str | None:
    """Absolute path of an image named in a data file, or None when the file is missing.

    `root` is the resolved folder the user chose; '..', absolute paths elsewhere
    and symlinks that lead outside it are refused, so a data file cannot make the
    app read (and show, or hand to CLIP) arbitrary files.
    """
    value = value.strip()
    if not value:
        return None
    try:
        p = Path(value)
        p = (p if p.is_absolute() else root / p).resolve()
    except (OSError, RuntimeError, ValueError) as e:
        raise InputError(f"bad image path {value[:80]!r}: {e}", path, line, item) from None
    if not p.is_relative_to(root):
        raise InputError(f"image path {value[:80]!r} leads outside the image folder {root}",
                         path, line, item)
    try:
        return str(p) if p.is_file() else None
    except (OSError, ValueError):
        return None


def image_index(folder: Path) -> dict[str, str]:
    """stem -> file name for the image files of a folder (listed once; .jpg first)."""
    rank = {ext: k for k, ext in enumerate(IMAGE_EXTS)}
    best: dict[str, tuple[int, str]] = {}
    with os.scandir(folder) as it:
        for entry in it:
            stem, ext = os.path.splitext(entry.name)
            k = rank.get(ext.lower())
            if k is not None and (stem not in best or k < best[stem][0]):
                best[stem] = (k, entry.name)
    return {stem: name for stem, (_, name) in best.items()}


def folder_image(folder: Path, index: dict[str, str], item_id: str) -> str | None:
    """The image of an item in a folder of <id>.<ext> files; symlinks leading out are refused."""
    name = index.get(item_id)
    if name is None:
        return None
    return inside(folder, name, folder / name, None, item_id)
