"""Reading data files as streams of lines: plain, .gz, .bz2, .xz or a one-file .zip
(told apart by their first bytes), never decompressed whole.

Caps stop compression bombs: a line may hold at most `ReadLimits.line_chars`
characters, and a compressed file may expand to at most `expansion` times its size
on disk (and always to `floor` bytes). Runs of empty lines cost no Python work, and
progress is reported as the file is read. Errors name the file and line and show the
offending bytes escaped and cut.
"""
from __future__ import annotations

import bz2
import codecs
import gzip
import lzma
import os
import re
import zipfile
import zlib
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from core.errors import InputError

CHUNK = 1 << 20
MAX_LINE_CHARS = 16 << 20      # the longest line of the real Amazon meta files is a few KB
MAX_EXPANSION = 200            # real catalogs compress 3-15x; gzip can reach 1000x, bz2 far more
MIN_DECOMPRESSED = 256 << 20   # always allowed, whatever the ratio


@dataclass(frozen=True)
class ReadLimits:
    line_chars: int = MAX_LINE_CHARS
    expansion: int = MAX_EXPANSION
    floor: int = MIN_DECOMPRESSED

    def cap(self, compressed_bytes: int) -> int:
        return max(self.floor, self.expansion * compressed_bytes)


def shown(value, n: int = 60) -> str:
    """A piece of file content (str or bytes) for a message: escaped (repr), cut to about n
    characters, with the whole length when it is longer."""
    r = repr(value[:n])
    if len(r) > n + 3:
        r = r[:n + 1] + "…"
    elif len(value) > n:
        r += "…"
    if len(value) > n:
        r += f" ({len(value):,} {'bytes' if isinstance(value, bytes) else 'characters'})"
    return r


def check_file(path) -> Path:
    if path is None or str(path) == "":
        raise InputError("no file given")
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path)
    if path.is_dir():
        raise InputError("is a folder, expected a file", path)
    return path


def _open(path: Path, raw):
    """(a binary stream of the decompressed content, its kind or None when plain)."""
    magic = raw.read(10)
    raw.seek(0)
    if magic[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb"), "gzip"
    # 'BZh', the block size, then a block's magic (pi) or the end of stream's (sqrt pi)
    if magic[:3] == b"BZh" and magic[3:4].isdigit() and magic[4:10] in (b"1AY&SY", b"\x17rE8P\x90"):
        return bz2.BZ2File(raw), "bzip2"
    if magic[:6] == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(raw), "xz"
    if magic[:4] == b"PK\x03\x04":
        try:
            zf = zipfile.ZipFile(raw)
            members = [m for m in zf.infolist() if not m.is_dir()]
            if len(members) != 1:
                raise InputError(f"a .zip must hold exactly one file, this one holds {len(members)}",
                                 path)
            return zf.open(members[0]), "zip"
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError) as e:
            raise InputError(f"corrupt or unsupported zip file: {e}", path) from None
    return raw, None


_DECOMPRESS_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile,
                      NotImplementedError, RuntimeError)
# a run of lines that each hold something other than white space
_CONTENT = re.compile(r"[^\S\n]*\S[^\n]*(?:\n[^\S\n]*\S[^\n]*)*")
_NONSPACE = re.compile(r"\S")


def line_batches(path, encoding: str | None = None, limits: ReadLimits | None = None,
                 progress=None, keep_blank: bool = False,
                 chunk: int = CHUNK) -> Iterator[tuple[int, list[str]]]:
    """(first line number, consecutive lines) batches, lines without their ends ('\\r\\n' or
    '\\n'; a first-line BOM is dropped). Blank lines (white space only) are left out unless
    keep_blank, which yields every line. Every line, blank or not, is held to the line cap."""
    encoding = encoding or "utf-8"
    limits = limits or ReadLimits()
    path = check_file(path)
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r}", path) from None
    cap_line = limits.line_chars
    stage = f"read {path.name}"
    n = 0   # lines completed so far
    try:
        raw = open(path, "rb")
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror or e}", path) from e
    with raw:
        size = os.fstat(raw.fileno()).st_size
        stream, kind = _open(path, raw)
        cap = limits.cap(size) if kind else None
        decoder = codecs.getincrementaldecoder(encoding)()
        pending: list[str] = []
        plen, total, carry, first = 0, 0, "", True
        while True:
            try:
                data = stream.read(chunk)
            except EOFError:
                raise InputError(f"truncated {kind} file after line {n} (download it again)",
                                 path) from None
            except _DECOMPRESS_ERRORS as e:
                if kind is None:
                    raise InputError(f"cannot read: {getattr(e, 'strerror', None) or e}", path) from e
                raise InputError(f"corrupt {kind} file after line {n}: {e}", path) from None
            total += len(data)
            if cap is not None and total > cap:
                raise InputError(f"decompresses to more than {cap:,} bytes, {cap / max(size, 1):,.0f}"
                                 f" times its {size:,} bytes on disk (a compression bomb?); a real "
                                 f"catalog this large needs ReadLimits raised", path, n + 1)
            try:
                text = decoder.decode(data, final=not data)
            except UnicodeError as e:   # utf-16 without a BOM raises the base class
                at = max(getattr(e, "start", 0), 0)
                done = data[:at].decode(encoding, errors="replace")
                offset = total - len(data) + at
                raise InputError(f"cannot decode as {encoding} ({getattr(e, 'reason', e)} at byte "
                                 f"{offset:,}: {shown(data[at:at + 16], 16)}); pass the file's "
                                 f"encoding with encoding= (--encoding), e.g. latin-1",
                                 path, n + 1 + done.count("\n")) from None
            if progress is not None and data:
                progress(stage, raw.tell(), size)
            if first and text:
                text, first = text.removeprefix("\ufeff"), False
            text = carry + text
            carry = ""
            if data and text.endswith("\r"):   # a '\r\n' may straddle two chunks
                text, carry = text[:-1], "\r"
            if "\r" in text:
                text = text.replace("\r\n", "\n")
            last = text.rfind("\n")
            if last < 0:
                if text:
                    pending.append(text)
                    plen += len(text)
                    if plen > cap_line:
                        raise _too_long(path, n + 1, "".join(pending), cap_line)
            else:   # the first line completes what the last chunk left; then whole lines
                head = text.find("\n")
                line = "".join(pending) + text[:head] if pending else text[:head]
                pending, plen, start = [], 0, head + 1
                if len(line) > cap_line:
                    raise _too_long(path, n + 1, line, cap_line)
                n += 1
                if keep_blank or line.strip():
                    yield n, [line]
                if start <= last:
                    yield from _region(text, start, last, n, keep_blank, cap_line, path)
                    n += text.count("\n", start, last) + 1
                rest = text[last + 1:]
                if rest:
                    pending, plen = [rest], len(rest)
                    if plen > cap_line:
                        raise _too_long(path, n + 1, rest, cap_line)
            if not data:
                break
        if pending:
            line = "".join(pending)
            n += 1
            if keep_blank or line.strip():
                yield n, [line]
        if progress is not None:
            progress(stage, size, size)


def _region(text: str, start: int, last: int, n: int, keep_blank: bool, cap_line: int, path):
    """The complete lines text[start:last] (last is a '\\n'), numbered from n + 1."""
    if last - start > cap_line:   # only with a cap below the chunk size
        _check_lengths(text[start:last].split("\n"), n + 1, cap_line, path)
    if keep_blank or text[start] != "\n" and text.find("\n\n", start, last) < 0:
        lines = text[start:last].split("\n")
        if keep_blank or all(map(str.strip, lines)):   # the common case: no blank line
            yield n + 1, lines
            return
    pos, count = start, 0
    while True:
        # skip blank lines at the speed of a character scan, then take the run of lines
        # with content from the start of the line that has the first non-space
        hit = _NONSPACE.search(text, pos, last)
        if hit is None:
            return
        begin = text.rfind("\n", pos, hit.start()) + 1 or pos
        m = _CONTENT.match(text, begin, last)
        count += text.count("\n", pos, begin)
        lines = m.group().split("\n")
        yield n + count + 1, lines
        count += len(lines) - 1
        pos = m.end()


def _check_lengths(lines: list[str], first: int, cap_line: int, path) -> None:
    longest = max(map(len, lines))
    if longest > cap_line:
        k = next(k for k, line in enumerate(lines) if len(line) == longest)
        raise _too_long(path, first + k, lines[k], cap_line)


def _too_long(path, line: int, text: str, cap_line: int) -> InputError:
    return InputError(f"line longer than {cap_line:,} characters (stopped after {len(text):,}; "
                      f"it starts {shown(text[:40], 40)}); a compression bomb or not a text file? "
                      f"ReadLimits(line_chars=...) raises the cap", path, line)


class Lines(list):
    """The non-blank lines of a file (without line ends); `numbered()` pairs them with their
    line numbers, kept as runs (index of a run's first line here, its line number)."""

    def __init__(self):
        super().__init__()
        self.runs: list[tuple[int, int]] = []

    def add(self, first: int, lines: list[str]) -> None:
        if not self.runs or first != self.runs[-1][1] + len(self) - self.runs[-1][0]:
            self.runs.append((len(self), first))
        self.extend(lines)

    def numbered(self):
        """(line number, text) of each line."""
        for k, (at, first) in enumerate(self.runs):
            end = self.runs[k + 1][0] if k + 1 < len(self.runs) else len(self)
            yield from zip(range(first, first + end - at), self[at:end] if self.runs[1:] else self)


def read_lines(path, encoding: str | None = None, limits: ReadLimits | None = None,
               progress=None) -> Lines:
    """Every non-blank line of a text file; a file without one is an error.

    Splits on '\\n' only (str.splitlines would also split on form feeds and the
    like, which would shift line numbers inside data fields)."""
    out = Lines()
    for first, lines in line_batches(path, encoding, limits, progress):
        out.add(first, lines)
    if not out:
        raise InputError("file is empty", path)
    return out


def iter_lines(path, encoding: str | None = None, limits: ReadLimits | None = None,
               progress=None) -> Iterator[tuple[int, str]]:
    """(line number, text) of each non-blank line, one at a time, for big JSON-lines files.
    A file without any is an error."""
    seen = False
    for first, lines in line_batches(path, encoding, limits, progress):
        seen = True
        yield from zip(range(first, first + len(lines)), lines)
    if not seen:
        raise InputError("file is empty", path)
