"""Downloading item images (http and https only) into WS/images.

Each file is written to NAME.part and renamed when complete, so an interrupted
run resumes: complete files are skipped and a .part file is continued with an
HTTP Range request when the server supports it. Sizes are capped, the content
type must be image/*, and nothing is written outside the destination folder.
Each file has a total deadline besides the per-read timeout (a server dripping a
byte at a time is cut off), the bytes must pass the safe image loader before the
file is kept, and loopback, link-local and private addresses are refused, for the
first URL and every redirect, unless allow_private is set.
"""
from __future__ import annotations

import functools
import hashlib
import http.client
import ipaddress
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from core.errors import InputError
from core.progress import silent

MAX_BYTES = 10 * 1024 * 1024
SCHEMES = ("http", "https")
EXT = {"image/jpeg": ".jpg", "image/jpg": ".jpg", "image/png": ".png", "image/webp": ".webp",
       "image/gif": ".gif"}
FORMAT_EXT = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif"}
DEADLINE = 60.0   # seconds per file, all attempts together: about 170 kB/s for the largest
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


class DownloadError(Exception):
    """One image could not be fetched; `retry` says whether trying again may help."""

    def __init__(self, message: str, retry: bool = False):
        super().__init__(message)
        self.retry = retry


def check_host(host: str | None, allow_private: bool) -> None:
    """Refuse a host any of whose addresses is loopback, link-local, private or reserved:
    a URL in a catalogue must not reach into the user's own network."""
    if allow_private:
        return
    if not host:
        raise DownloadError("URL has no host")
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as e:
        raise DownloadError(f"cannot resolve {host[:100]}: {e}", retry=True) from None
    for info in infos:
        _check_address(host, info[4][0])


def _check_address(host: str, address: str) -> None:
    ip = ipaddress.ip_address(address.split("%")[0])
    if getattr(ip, "ipv4_mapped", None):
        ip = ip.ipv4_mapped
    if not ip.is_global or ip.is_multicast:
        raise DownloadError(f"refused {host[:100]}: it resolves to the private or local address "
                            f"{ip} (allow with --allow-private-urls)")


class _Clock:
    """The deadline of one file; connections made under it are shut when it passes."""

    def __init__(self, seconds: float):
        self.seconds, self.at = seconds, time.monotonic() + seconds

    def left(self) -> float:
        return self.at - time.monotonic()

    def expired(self) -> bool:
        return self.left() <= 0

    def error(self) -> DownloadError:
        return DownloadError(f"took longer than the {self.seconds:g} s allowed per file; cut off")


def _connection(base):
    class Checked(base):
        """Checks the address actually connected to (no DNS rebinding between check and
        connect), and shuts the socket at the deadline so a slow drip in headers or body ends."""

        def __init__(self, *a, allow_private=False, clock=None, **k):
            super().__init__(*a, **k)
            self._allow, self._clock, self._timer = allow_private, clock, None

        def connect(self):
            super().connect()
            if not self._allow and self._tunnel_host is None:   # behind a proxy the peer is it
                _check_address(self.host, self.sock.getpeername()[0])
            sock = self.sock
            self._timer = threading.Timer(max(0.0, self._clock.left()), _shut, (sock,))
            self._timer.daemon = True
            self._timer.start()

        def close(self):
            if self._timer:
                self._timer.cancel()
            super().close()

    return Checked


def _shut(sock) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


_CheckedHTTP = _connection(http.client.HTTPConnection)
_CheckedHTTPS = _connection(http.client.HTTPSConnection)


class _HTTP(urllib.request.HTTPHandler):
    def __init__(self, **conn):
        super().__init__()
        self.conn = conn

    def http_open(self, req):
        return self.do_open(functools.partial(_CheckedHTTP, **self.conn), req)


class _HTTPS(urllib.request.HTTPSHandler):
    def __init__(self, **conn):
        super().__init__()
        self.conn = conn

    def https_open(self, req):
        return self.do_open(functools.partial(_CheckedHTTPS, **self.conn), req,
                            context=self._context)


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http(s) (urllib alone would also follow ftp://) and only to
    hosts that pass check_host."""

    def __init__(self, allow_private: bool):
        super().__init__()
        self.allow_private = allow_private

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        parts = urlsplit(newurl)
        if parts.scheme.lower() not in SCHEMES:
            raise DownloadError(f"refused redirect to {newurl[:100]}")
        try:
            check_host(parts.hostname, self.allow_private)
        except DownloadError as e:
            raise DownloadError(f"refused redirect to {newurl[:100]}: {e}") from None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener(allow_private: bool, clock: _Clock):
    # behind a proxy the peer is the proxy, so only the target's own addresses are checked
    conn = {"allow_private": allow_private or bool(urllib.request.getproxies()), "clock": clock}
    return urllib.request.build_opener(_HTTP(**conn), _HTTPS(**conn), _Redirects(allow_private))


def file_stem(item_id: str) -> str:
    """A file name that is the id itself when harmless, else a hash of it."""
    if _SAFE.fullmatch(item_id) and ".." not in item_id:
        return item_id
    return "item-" + hashlib.sha256(item_id.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def existing(dest: Path, stem: str) -> Path | None:
    for ext in sorted(set(EXT.values())):
        p = dest / (stem + ext)
        if p.is_file() and not p.is_symlink():   # a planted link could point anywhere
            return p
    return None


def fetch(url: str, dest: Path, stem: str, *, max_bytes: int = MAX_BYTES, timeout: float = 10.0,
          retries: int = 3, backoff: float = 0.5, deadline: float = DEADLINE,
          allow_private: bool = False) -> Path:
    """Download one image to dest/stem.EXT and return its path. Raises DownloadError.
    `timeout` bounds each read, `deadline` the whole file, all attempts together."""
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
    clock = _Clock(deadline)
    for attempt in range(retries + 1):
        try:
            check_host(urlsplit(url).hostname, allow_private)
            return _attempt(url, dest, stem, part, max_bytes, timeout, _opener(allow_private, clock),
                            clock)
        except DownloadError as e:
            if clock.expired():
                raise clock.error() from None
            if not e.retry or attempt == retries:
                raise
        pause = backoff * 2 ** attempt
        if pause >= clock.left():
            raise clock.error()
        time.sleep(pause)
    raise AssertionError("unreachable")


def _attempt(url, dest: Path, stem: str, part: Path, max_bytes: int, timeout: float, opener,
             clock: _Clock) -> Path:
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "msm4sr-studio"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = opener.open(req, timeout=min(timeout, max(clock.left(), 0.01)))
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
                while chunk := resp.read1(65536):   # read1: one recv, so the clock is seen
                    size += len(chunk)
                    if size > max_bytes:
                        f.close()
                        part.unlink(missing_ok=True)
                        raise DownloadError(f"image larger than {max_bytes} bytes")
                    f.write(chunk)
                    if clock.expired():
                        raise clock.error()
        except DownloadError:
            raise
        except (OSError, http.client.HTTPException) as e:   # timeouts and resets mid-body: the .part is kept for resuming
            raise DownloadError(f"download interrupted: {e}", retry=True) from None
    if total is not None and size < total:
        raise DownloadError(f"download incomplete ({size} of {total} bytes)", retry=True)
    return _verified(part, dest, stem)


def _verified(part: Path, dest: Path, stem: str) -> Path:
    """Keep the download only if the safe loader fully decodes it; the name follows the
    content, not the server's content type."""
    from PIL import Image
    try:
        with Image.open(part) as im:
            fmt = im.format
    except Exception as e:   # any failure to identify it means it is not kept
        part.unlink(missing_ok=True)
        raise DownloadError(f"downloaded file is not an image ({type(e).__name__}); refused") \
            from None
    ext = FORMAT_EXT.get(fmt)
    if ext is None:
        part.unlink(missing_ok=True)
        raise DownloadError(f"downloaded file is {fmt}, not JPEG, PNG, WebP or GIF; refused")
    check = dest / (stem + ".part" + ext)   # not a name existing() accepts until it passes
    part.replace(check)
    try:
        from core.features.images import load_image
        load_image(check, root=dest)
    except InputError as e:
        check.unlink(missing_ok=True)
        raise DownloadError(f"downloaded file refused by the image loader: {e}") from None
    final = dest / (stem + ext)
    check.replace(final)
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
