"""Issue 12 attack 13: GUI thumbnails go through core's safe loader.

A symlink leaving the image folder is refused before the target is opened, a
tiny file whose header claims 65500x65500 pixels is refused without allocating,
and a normal image still yields a thumbnail (in core and in the Qt cache).
"""
from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QSize

from core.errors import InputError
from core.features.images import load_image, load_thumbnail
from gui.thumbnails import ThumbnailCache, decode_image

REPO = Path(__file__).resolve().parents[1]
OPENED: list[str] | None = None      # set to a list while a test watches file opens


def _audit(event, args):
    if event == "open" and OPENED is not None and isinstance(args[0], (str, bytes, os.PathLike)):
        OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


def jpeg_bytes(size=(16, 16), color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG")
    return buf.getvalue()


def jpeg_claiming(w: int, h: int) -> bytes:
    """A small real JPEG whose SOF0 header is rewritten to claim w x h."""
    data = bytearray(jpeg_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", h, w)
    return bytes(data)


def png_claiming(w: int, h: int) -> bytes:
    """A small real PNG whose IHDR (CRC fixed) claims w x h."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 90, 200)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    body = b"IHDR" + struct.pack(">II", w, h) + bytes(data[24:29])
    data[12:29] = body
    data[29:33] = struct.pack(">I", zlib.crc32(body))
    return bytes(data)


def test_claiming_headers_are_what_they_say(tmp_path):
    # the attack files really claim the huge size (so the tests below test something)
    (tmp_path / "j.jpg").write_bytes(jpeg_claiming(65500, 65500))
    (tmp_path / "p.png").write_bytes(png_claiming(65500, 65500))
    Image.MAX_IMAGE_PIXELS, keep = None, Image.MAX_IMAGE_PIXELS
    try:
        for name in ("j.jpg", "p.png"):
            with Image.open(tmp_path / name) as im:
                assert im.size == (65500, 65500)
    finally:
        Image.MAX_IMAGE_PIXELS = keep
    assert len(jpeg_claiming(65500, 65500)) < 1000


def test_symlink_out_of_the_folder_is_refused_and_never_opened(tmp_path, qtbot):
    global OPENED
    outside = tmp_path / "secret"
    outside.mkdir()
    target = outside / "poster.jpg"          # a valid image: only confinement can refuse it
    target.write_bytes(jpeg_bytes())
    folder = tmp_path / "images"
    folder.mkdir()
    link = folder / "i1.jpg"
    link.symlink_to(target)
    OPENED = []
    try:
        with pytest.raises(InputError, match="outside") as err:
            decode_image(str(link), 112, 140)
        with pytest.raises(InputError, match="outside"):
            load_thumbnail(link, 112, 140, root=folder)
    finally:
        seen, OPENED = OPENED, None
    assert str(link) in str(err.value)
    assert not [p for p in seen if Path(p).resolve() == target.resolve()], seen
    # the target itself is fine when asked for directly (so the refusal is the symlink's)
    assert load_thumbnail(target, 112, 140).size == (16, 16)

    cache = ThumbnailCache(QSize(56, 70))
    assert cache.get(str(link)) is cache.loading
    qtbot.waitUntil(cache.idle, timeout=10000)
    assert cache.is_broken(str(link))


def test_symlink_to_etc_shadow_is_refused(tmp_path):
    link = tmp_path / "poster.png"
    link.symlink_to("/etc/shadow")
    with pytest.raises(InputError, match="outside"):
        decode_image(str(link), 112, 140)


@pytest.mark.parametrize("name,maker", [("bomb.jpg", jpeg_claiming), ("bomb.png", png_claiming)])
def test_header_bomb_is_refused(tmp_path, name, maker):
    p = tmp_path / name
    p.write_bytes(maker(65500, 65500))
    with pytest.raises(InputError, match="too large") as err:
        decode_image(str(p), 112, 140)
    assert name in str(err.value)
    with pytest.raises(InputError, match="too large"):
        load_image(p)          # the feature loader refuses it the same way


# Peak RSS of one decode, measured in a fresh interpreter after the imports (Pillow's
# pixel buffers are C allocations, invisible to tracemalloc).
RSS_PROBE = """
import json, resource, sys
from PySide6.QtGui import QImage
from gui.thumbnails import decode_image
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    decode_image(sys.argv[1], 112, 140)
    outcome = "decoded"
except Exception as e:
    outcome = type(e).__name__
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"outcome": outcome, "grew_kb": after - before}))
"""


@pytest.mark.parametrize("name,maker", [("bomb.jpg", jpeg_claiming), ("bomb.png", png_claiming)])
def test_header_bomb_costs_no_memory(tmp_path, name, maker):
    p = tmp_path / name
    p.write_bytes(maker(65500, 65500))
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", RSS_PROBE, str(p)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["outcome"] == "InputError"
    assert got["grew_kb"] < 20 * 1024, got      # QImageReader took ~310 MB here


def test_large_jpeg_is_decoded_reduced(tmp_path):
    p = tmp_path / "big.jpg"
    Image.new("RGB", (4000, 3000), (20, 160, 40)).save(p, "JPEG")
    with Image.open(p) as im:
        im.draft("RGB", (112, 140))
        assert im.size[0] <= 1000        # draft really reduces this file at decode time
    img = decode_image(str(p), 112, 140)
    assert (img.width(), img.height()) == (112, 84)


def test_normal_image_still_yields_a_thumbnail(tmp_path, qtbot):
    p = tmp_path / "poster.png"
    Image.new("RGB", (300, 600), (0, 90, 200)).save(p, "PNG")
    img = decode_image(str(p), 112, 140)
    assert (img.width(), img.height()) == (70, 140)
    c = img.pixelColor(10, 10)
    assert (c.red(), c.green(), c.blue()) == (0, 90, 200)

    cache = ThumbnailCache(QSize(112, 140))
    assert cache.get(str(p)) is cache.loading
    qtbot.waitUntil(cache.idle, timeout=10000)
    assert not cache.is_broken(str(p))
    assert cache.get(str(p)).size() == QSize(70, 140)


def test_lying_suffix_and_garbage_become_broken(tmp_path):
    fake = tmp_path / "x.png"
    fake.write_bytes(jpeg_bytes())
    with pytest.raises(InputError, match="content is JPEG"):
        decode_image(str(fake), 112, 140)
    junk = tmp_path / "y.jpg"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(InputError, match="not an image"):
        decode_image(str(junk), 112, 140)
