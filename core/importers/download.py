"""Downloading item images (http and https only) into WS/images.

Each file is written to NAME.part and renamed when complete, so an interrupted
run resumes: complete files are skipped and a .part file is continued with an
HTTP Range request when the server supports it. Sizes are capped, the content
type must be image/*, and nothing is written outside the destination folder.
"""
from __future__ import annotations

import hashlib
import http.client
import re
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from core.progress import silent

MAX_BYTES = 10 * 1024 * 1024
SCHEMES = ("http", "https")
EXT = {"image/jpeg": ".jpg", "image/jpg": ".jpg", "image/png": ".png", "image/webp": ".webp",
       "image/gif": ".gif"}
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


class DownloadError(Exception):
    """One image could not be fetched; `retry` says whether trying again may help."""

    def __init__(self, message: str, retry: bool = False):
        super().__init__(message)
        self.retry = retry


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http(s); urllib alone would also follow ftp://."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urlsplit(newurl).scheme.lower() not in SCHEMES:
            raise DownloadError(f"refused redirect to {newurl[:100]}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_opener = urllib.request.build_opener(_Redirects)


def file_stem(item_id: str) -> str:
    """A file name that is the id itself when harmless, else a hash of it."""
    if _SAFE.fullmatch(item_id) and ".." not in item_id:
        return item_id
    return "item-" + hashlib.sha256(item_id.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def existing(dest: Path, stem: str) -> Path | None:
    for ext in sorted(set(EXT.values())) + [".img"]:
        p = dest / (stem + ext)
        if p.is_file() and not p.is_symlink():   # a planted link could point anywhere
            return p
    return None


def fetch(url: str, dest: Path, stem: str, *, max_bytes: int = MAX_BYTES, timeout: float = 10.0,
          retries: int = 3, backoff: float = 0.5) -> Path:
    """Download one image to dest/stem.EXT and return its path. Raises DownloadError."""
    dest = Path(dest).resolve()
    scheme = urlsplit(url).scheme.lower()
    if scheme not in SCHEMES:
        raise DownloadError(f"refused {scheme or 'scheme-less'} URL (only http and https)")
    done = existing(dest, stem)
    if done:
        return done
    part = dest / (stem + ".part")
    if part.is_symlink():   # never write through a link into some other folder
        part.unlink()
    if not part.resolve().is_relative_to(dest):
        raise DownloadError("file name leads outside the images folder")
    for attempt in range(retries + 1):
        try:
            return _attempt(url, dest, stem, part, max_bytes, timeout)
        except DownloadError as e:
            if not e.retry or attempt == retries:
                raise
        time.sleep(backoff * 2 ** attempt)
    raise AssertionError("unreachable")


def _attempt(url, dest: Path, stem: str, part: Path, max_bytes: int, timeout: float) -> Path:
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "msm4sr-studio"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = _opener.open(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:          # our .part is stale or already whole: start over
            part.unlink(missing_ok=True)
        raise DownloadError(f"HTTP {e.code} {e.reason}",
                            retry=e.code >= 500 or e.code in (408, 416, 429)) from None
    except DownloadError:
        raise
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise DownloadError(f"cannot connect: {getattr(e, 'reason', e)}", retry=True) from None
    with resp:
        ctype = (resp.headers.get_content_type() or "").lower()
        if not ctype.startswith("image/"):
            raise DownloadError(f"not an image (content type {ctype or 'missing'})")
        length = resp.headers.get("Content-Length")
        resumed = resp.status == 206 and have and \
            (resp.headers.get("Content-Range") or "").startswith(f"bytes {have}-")
        if not resumed:
            have = 0
        total = have + int(length) if length and length.isdigit() else None
        if total is not None and total > max_bytes:
            part.unlink(missing_ok=True)
            raise DownloadError(f"image larger than {max_bytes} bytes ({total})")
        try:
            with open(part, "ab" if resumed else "wb") as f:
                size = have
                while chunk := resp.read(65536):
                    size += len(chunk)
                    if size > max_bytes:
                        f.close()
                        part.unlink(missing_ok=True)
                        raise DownloadError(f"image larger than {max_bytes} bytes")
                    f.write(chunk)
        except DownloadError:
            raise
        except (OSError, http.client.HTTPException) as e:   # timeouts and resets mid-body: the .part is kept for resuming
            raise DownloadError(f"download interrupted: {e}", retry=True) from None
    if total is not None and size < total:
        raise DownloadError(f"download incomplete ({size} of {total} bytes)", retry=True)
    ext = EXT.get(ctype) or (Path(urlsplit(url).path).suffix.lower()
                             if Path(urlsplit(url).path).suffix.lower() in EXT.values() else ".img")
    final = dest / (stem + ext)
    part.replace(final)
    return final


def download_images(urls: dict[str, str], dest, progress=silent, *, workers: int = 4,
                    **kw) -> tuple[dict[str, str], dict[str, str]]:
    """Fetch item -> URL into dest. Returns (item -> absolute path, item -> error)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    got: dict[str, str] = {}
    failed: dict[str, str] = {}
    todo = sorted(urls)
    progress("download", 0, len(todo))

    def one(item):
        try:
            return item, str(fetch(urls[item], dest, file_stem(item), **kw)), None
        except DownloadError as e:
            return item, None, str(e)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for k, (item, path, err) in enumerate(pool.map(one, todo), 1):
            if path:
                got[item] = path
            else:
                failed[item] = err
            progress("download", k, len(todo))
    return got, failed
