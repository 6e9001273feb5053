"""Safe image loading on real posters and on broken files made from them."""
from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from core.errors import InputError
from core.features.images import load_image


@pytest.fixture
def poster(ml1m):
    return ml1m / "posters" / "1.jpg"


@pytest.mark.realdata
def test_real_poster_loads_as_rgb(poster):
    im = load_image(poster)
    assert im.mode == "RGB"
    assert im.size[0] > 50 and im.size[1] > 50


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InputError, match="not found") as e:
        load_image(tmp_path / "nope.jpg")
    assert "nope.jpg" in str(e.value)


@pytest.mark.realdata
def test_truncated_jpeg_fails_on_full_decode(poster, tmp_path):
    data = poster.read_bytes()
    bad = tmp_path / "cut.jpg"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="corrupt or truncated") as e:
        load_image(bad)
    assert "cut.jpg" in str(e.value)


@pytest.mark.realdata
def test_garbage_after_jpeg_header(poster, tmp_path):
    data = bytearray(poster.read_bytes())
    data[600:] = os.urandom(len(data) - 600)  # keep the header, destroy the scan data
    bad = tmp_path / "noise.jpg"
    bad.write_bytes(bytes(data))
    with pytest.raises(InputError):
        load_image(bad)


def test_text_file_named_jpg(tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("this is not a picture\n")
    with pytest.raises(InputError, match="not an image") as e:
        load_image(bad)
    assert "notes.jpg" in str(e.value)


@pytest.mark.realdata
def test_png_named_jpg_is_refused(poster, tmp_path):
    buf = io.BytesIO()
    Image.open(poster).save(buf, format="PNG")
    liar = tmp_path / "liar.jpg"
    liar.write_bytes(buf.getvalue())
    with pytest.raises(InputError, match="content is PNG"):
        load_image(liar)
    honest = tmp_path / "honest.png"
    honest.write_bytes(buf.getvalue())
    assert load_image(honest).size == Image.open(poster).size


@pytest.mark.realdata
def test_decompression_bomb_error_and_warning(poster, monkeypatch):
    w, h = Image.open(poster).size
    # above twice the limit: Pillow raises DecompressionBombError
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", (w * h) // 3)
    with pytest.raises(InputError, match="decompression bomb"):
        load_image(poster)
    # between the limit and twice it: Pillow only warns; we refuse all the same
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", int(w * h / 1.5))
    with pytest.raises(InputError, match="decompression bomb"):
        load_image(poster)


@pytest.mark.realdata
def test_symlink_outside_root_is_refused(poster, tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    link = root / "escape.jpg"
    link.symlink_to(poster)
    with pytest.raises(InputError, match="outside"):
        load_image(link, root=root)
    assert load_image(link).mode == "RGB"  # without a root, links are followed


@pytest.mark.realdata
def test_unsupported_suffix(tmp_path, poster):
    odd = tmp_path / "poster.exe"
    odd.write_bytes(poster.read_bytes())
    with pytest.raises(InputError, match="unsupported image type"):
        load_image(odd)
