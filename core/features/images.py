"""Safe image loading: every failure becomes an InputError naming the file.

Guards: missing files, non-images, truncated or corrupt data (a full decode is
forced), decompression bombs (Pillow's MAX_IMAGE_PIXELS is kept and its warning is
treated as an error), content that lies about its extension, and symlinks leaving
an allowed root. `load_image` (features) and `load_thumbnail` (the GUI) share
these checks through `_open_checked`.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path

from core.errors import InputError

# suffix -> Pillow formats its content may have (MPO is a multi-picture JPEG)
SUFFIX_FORMATS = {
    ".jpg": {"JPEG", "MPO"}, ".jpeg": {"JPEG", "MPO"}, ".png": {"PNG"},
    ".webp": {"WEBP"}, ".gif": {"GIF"}, ".bmp": {"BMP"}, ".tif": {"TIFF"}, ".tiff": {"TIFF"},
}


@contextmanager
def _open_checked(path, root):
    """The opened (header only, not decoded) PIL image after every check, errors as InputError."""
    from PIL import Image, UnidentifiedImageError
    p = Path(path)
    if root is not None:
        real, base = p.resolve(), Path(root).resolve()
        if not real.is_relative_to(base):
            raise InputError(f"image points outside {base} (to {real}); refused", path=p)
    if not p.exists():
        raise InputError("image file not found", path=p)
    if not p.is_file():
        raise InputError("image path is not a file", path=p)
    suffix = p.suffix.lower()
    allowed = SUFFIX_FORMATS.get(suffix)
    if allowed is None:
        raise InputError(f"unsupported image type {suffix or '(no suffix)'!r}; expected one of "
                         f"{', '.join(sorted(SUFFIX_FORMATS))}", path=p)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            # Image.open reads only the header and applies the pixel limit there,
            # so a bomb is refused before anything is decoded
            with Image.open(p) as im:
                if im.format not in allowed:
                    raise InputError(f"content is {im.format}, not what the {suffix} name says; "
                                     "refused", path=p)
                yield im
        except InputError:
            raise
        except UnidentifiedImageError:
            raise InputError("not an image (content not recognised)", path=p) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise InputError(f"image too large, refused as a possible decompression bomb ({e})",
                             path=p) from None
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise InputError(f"corrupt or truncated image ({e})", path=p) from None


def load_image(path, root=None):
    """The image at `path` as an RGB PIL image, fully decoded, or InputError."""
    with _open_checked(path, root) as im:
        im.load()  # force a full decode: truncated files fail here, not later
        return im.convert("RGB")


def load_thumbnail(path, width: int, height: int, root=None):
    """The image at `path` as an RGB PIL image fitting width x height, or InputError.

    `root` defaults to the folder the path names, so a symlink cannot lead
    elsewhere (e.g. to /etc/shadow). JPEGs are decoded at reduced scale (draft),
    so a large poster is never held at full size.
    """
    from PIL import Image, ImageOps
    p = Path(path).absolute()
    with _open_checked(p, p.parent if root is None else root) as im:
        box = (max(1, int(width)), max(1, int(height)))
        if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):   # EXIF says rotate 90°: fit the turned box
            box = box[::-1]
        im.draft("RGB", box)
        if im.mode not in ("RGB", "L"):
            # palette and alpha images: Pillow shrinks "P" by nearest neighbour, so shrink in RGBA
            # and lay the result on white, as the grid's cells are
            im = im.convert("RGBA")
            im.thumbnail(box)
            im = ImageOps.exif_transpose(im)
            flat = Image.new("RGB", im.size, (255, 255, 255))
            flat.paste(im, mask=im.getchannel("A"))
            return flat
        im.thumbnail(box)      # decodes (reduced where the format allows) and shrinks
        return ImageOps.exif_transpose(im).convert("RGB")
