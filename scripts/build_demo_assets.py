#!/usr/bin/env python3
"""Build the demo catalog (assets/demo/items.tsv + images/*.png) from Debian's
`openclipart-svg` package (public-domain clip art).

    apt-get download openclipart-svg && dpkg-deb -x openclipart-svg_*.deb /tmp/oca
    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/build_demo_assets.py \
        --source /tmp/oca/usr/share/openclipart/svg

Deterministic: the same package gives byte-identical files. Each drawing's
title, artist and keywords come from its SVG's RDF/Dublin Core metadata; the
drawing is rasterised with QtSvg, cropped to its content, centred on white and
saved as a small palette PNG. Interactions are made separately by
scripts/simulate_shoppers.py.
"""
from __future__ import annotations

import argparse
import hashlib
import html
import io
import os
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "assets" / "demo"
SIZE = 128            # PNG side in pixels
RENDER = 384          # render size before cropping (crop needs headroom)
PER_DEPARTMENT = 26   # drawings kept per department
MAX_SVG_BYTES = 300_000  # larger drawings are slow to render and rarely needed

# Shop department -> source folders (relative to the svg root) and the
# sub-category each folder gives. Order matters only for the output order.
DEPARTMENTS: dict[str, list[tuple[str, str]]] = {
    "Fruit & Vegetables": [("food/fruit", "Fruit"), ("food/vegetables", "Vegetables")],
    "Bakery & Sweets": [("food/desserts", "Desserts"), ("food/breads_and_carbs", "Bread")],
    "Drinks": [("food/beverages", "Beverages"), ("food/beverages/alcohol", "Wine & Beer")],
    "Deli & Meals": [("food/meats_and_eggs", "Meat & Eggs"), ("food/dairy", "Dairy"),
                     ("food", "Meals")],
    "Pets & Animals": [("animals/mammals/dogs", "Dogs"), ("animals/mammals/housecats", "Cats"),
                       ("animals/birds", "Birds"), ("animals/fish", "Fish"),
                       ("animals/mammals", "Mammals"), ("animals/mammals/horses", "Horses"),
                       ("animals/bugs", "Bugs")],
    "Garden": [("plants/flowers", "Flowers"), ("plants/trees", "Trees"),
               ("plants/trees/evergreen", "Trees"), ("plants", "Plants")],
    "Tools & DIY": [("tools", "Tools")],
    "Office & School": [("office", "Office"), ("office/telephone", "Telephones"),
                        ("education/books", "Books"), ("education", "School")],
    "Electronics": [("electronics", "Components"), ("electronics/bulb", "Lighting"),
                    ("electronics/battery", "Batteries"), ("computer/hardware", "Computers")],
    "Vehicles": [("transportation/vehicles", "Cars & Trucks"), ("transportation/boating", "Boats"),
                 ("transportation", "Transport")],
    "Home": [("buildings/furniture", "Furniture"), ("containers", "Containers"),
             ("buildings/homes", "Houses")],
    "Clothing": [("people/clothing/hats", "Hats"), ("people/clothing", "Clothes")],
    "Music": [("recreation/music", "Instruments")],
    "Sports & Toys": [("recreation/sports", "Sports"), ("recreation/toys", "Toys"),
                      ("recreation/games/chess", "Games")],
    "Party & Holidays": [("recreation/party", "Party"), ("recreation/holiday/christmas", "Christmas"),
                         ("recreation/holiday/valentines", "Valentine's"),
                         ("recreation/holiday", "Holidays")],
}

NS = {"dc": "http://purl.org/dc/elements/1.1/",
      "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
      "cc": "http://web.resource.org/cc/"}
PUBLIC_DOMAIN = "http://web.resource.org/cc/PublicDomain"

# Keywords that say nothing about the picture.
NOISE_TAGS = {"hash", "unsorted", "svg", "clipart", "clip", "art", "image", "shape", "symbol",
              "musicstuff", "musicsym", "recreation", "work", "entertainment", "cartoon",
              "media", "none", "misc", "other", "icon", "picture", "drawing", "openclipart",
              "menu", "study", "transport", "event", "equipment", "commercial", "office",
              "education", "people", "thing", "stuff", "object", "simple", "colour", "color"}
# Titles that are not names of things.
BAD_TITLE = re.compile(r"clipart|\bsvg\b|various|example|untitled|sample|^r\d+|^test|"
                       r"\bby\b|banner|logo|\bsign\b|signs|pattern|background|border|"
                       r"illustration|etiquette|icons?\b|gallows|cannabis|human|ampel|rules|"
                       r"gun\b|rifle|pistol|weapon|bomb|nude|naked|pantyhose|"
                       r"diagram|hauled|reaching|running free|heeling|points? of sail", re.I)
# Artists whose titles are Italian (one prolific artist) make poor English text features.
SKIP_ARTISTS = re.compile(r"rollandin|mauro olivo", re.I)
# Black-and-white twins of coloured drawings, and Italian-titled files.
SKIP_FILES = re.compile(r"architetto|archite_|_bw[_.]|_bw$|bw_", re.I)
TITLE_STOP = {"a", "an", "the", "of", "and", "with", "in", "on", "for", "to", "b", "w", "bw"}


@dataclass
class Drawing:
    path: Path
    department: str
    sub: str
    title: str
    artist: str
    tags: list[str]
    id: str = ""
    png: bytes = field(default=b"", repr=False)


# ---- metadata -------------------------------------------------------------
def read_metadata(path: Path) -> tuple[str, str, list[str], str | None] | None:
    """(title, artist, keywords, licence URL) from the SVG's RDF, or None if unreadable."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError, UnicodeDecodeError):
        return None
    work = root.find(".//cc:Work", NS)
    if work is None:
        return "", "", [], None
    title = (work.findtext("dc:title", "", NS) or "").strip()
    artist = (work.findtext("dc:creator/cc:Agent/dc:title", "", NS) or "").strip()
    subjects = [(li.text or "").strip() for li in work.findall("dc:subject/rdf:Bag/rdf:li", NS)]
    lic = work.find("cc:license", NS)
    licence = lic.get(f"{{{NS['rdf']}}}resource") if lic is not None else None
    return title, artist, subjects, licence


def clean_title(title: str, path: Path) -> str:
    t = title or path.stem
    t = t.replace("&#39;", "'")
    t = re.sub(r"\((?:b\s*and\s*w|b&w|colou?r|bw)\)", "", t, flags=re.I)
    t = re.sub(r"([a-z])([A-Z])", r"\1 \2", t)          # CamelCase -> words
    t = re.sub(r"[_\-]+", " ", t)
    t = re.sub(r"(?<=[A-Za-z])\d+\b|\b\d+$|\b0\d\b", "", t)  # trailing numbers: glace_01, Aircraft1
    t = re.sub(r"\s+", " ", t).strip(" .,-")
    return t[:1].upper() + t[1:] if t else ""


def subject_words(subjects: list[str]) -> list[str]:
    """Lower-case keywords from dc:subject, noise and run-together words dropped."""
    words: list[str] = []
    for s in subjects:
        for w in re.split(r"[,;/]+", s.lower()):
            w = re.sub(r"[^a-z' -]", "", w).strip(" '-")
            if 2 < len(w) <= 14 and w not in NOISE_TAGS and w not in words:
                words.append(w)
    return [w for w in words if not (w.endswith("s") and w[:-1] in words)]


def clean_tags(subjects: list[str], title: str, sub: str, vocab: set[str]) -> list[str]:
    """Keywords, most specific first: title words that are keywords somewhere in the
    package (so 'Another Apple' gives 'apple' but not 'another'), then the drawing's
    own keywords, then its sub-category."""
    words = subject_words(subjects)
    title_words = [w for w in re.findall(r"[a-z]+", title.lower())
                   if len(w) > 2 and w not in TITLE_STOP and w not in NOISE_TAGS]
    short = len(title_words) <= 2   # a short title is the name of the thing itself
    first = [w for w in title_words if short or w in words or w in vocab]
    out = first + [w for w in words if w not in first]
    out += [w for w in re.findall(r"[a-z]+(?:'s)?", sub.lower()) if w not in TITLE_STOP]
    out = [w.removesuffix("'s") for w in out if not w.startswith("hash")]
    kept: list[str] = []
    for w in out:  # one of singular/plural, whichever comes first
        stem = w[:-1] if w.endswith("s") and not w.endswith("ss") else w
        if all(stem != (k[:-1] if k.endswith("s") and not k.endswith("ss") else k) for k in kept):
            kept.append(w)
    return [w for w in kept if len(w) > 2][:8]


def fix_text(s: str) -> str:
    """Undo HTML entities and UTF-8 read as Latin-1 ('B&Atilde;&uml;r' -> 'Bèr')."""
    s = html.unescape(s)
    try:
        s = s.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass
    return re.sub(r"\s+", " ", s).strip()


def tag_scores(tags: list[str]) -> list[tuple[str, float]]:
    """Scores in (0, 1], falling with rank, like a zero-shot tagger's confidences."""
    return [(t, round(1.0 / (1.0 + 0.35 * k), 3)) for k, t in enumerate(tags)]


def slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:40].strip("-") or "item"


# ---- rendering ------------------------------------------------------------
_QT_WARNINGS: list[str] = []


def _collect_qt_warnings(mode, context, message) -> None:
    _QT_WARNINGS.append(message)


def render_png(path: Path) -> bytes | None:
    """The drawing cropped to its visible content, centred on a white square, as PNG
    bytes; None when Qt cannot render it or it comes out (nearly) empty."""
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer
    from PIL import Image

    _QT_WARNINGS.clear()
    renderer = QSvgRenderer(str(path))
    if not renderer.isValid() or _QT_WARNINGS:
        return None
    box = renderer.viewBoxF()
    if box.width() <= 0 or box.height() <= 0:
        return None
    scale = RENDER / max(box.width(), box.height())
    w, h = max(1, round(box.width() * scale)), max(1, round(box.height() * scale))
    img = QImage(w, h, QImage.Format_ARGB32)
    img.fill(0)
    painter = QPainter(img)
    painter.setRenderHint(QPainter.Antialiasing)
    renderer.render(painter, QRectF(0, 0, w, h))
    painter.end()
    if _QT_WARNINGS:
        return None  # Qt could not draw part of it (missing embedded image, bad path data)
    ptr = img.constBits()
    rgba = Image.frombuffer("RGBA", (w, h), bytes(ptr), "raw", "BGRA", 0, 1)
    solid = rgba.getchannel("A").point(lambda a: 255 if a > 24 else 0)
    bbox = solid.getbbox()
    if bbox is None:
        return None
    x0, y0, x1, y1 = bbox
    if (x1 - x0) < 12 or (y1 - y0) < 12:
        return None
    crop = rgba.crop(bbox)
    # Drop drawings that are a thin line or a page of text: too little ink in the box.
    ink = solid.crop(bbox).histogram()[255] / (crop.width * crop.height)
    if ink < 0.06:
        return None
    side = max(crop.width, crop.height)
    pad = max(2, side // 16)
    canvas = Image.new("RGBA", (side + 2 * pad, side + 2 * pad), (255, 255, 255, 255))
    canvas.alpha_composite(crop, ((canvas.width - crop.width) // 2, (canvas.height - crop.height) // 2))
    small = canvas.convert("RGB").resize((SIZE, SIZE), Image.LANCZOS)
    pal = small.quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buf = io.BytesIO()
    pal.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


# ---- selection ------------------------------------------------------------
def read_folders(root: Path) -> list[tuple[str, str, Path, tuple]]:
    """(department, sub-category, file, metadata) for every usable-looking file."""
    out = []
    for department, folders in DEPARTMENTS.items():
        for folder, sub in folders:
            for p in sorted((root / folder).glob("*.svg")):
                if SKIP_FILES.search(p.name) or p.stat().st_size > MAX_SVG_BYTES:
                    continue
                meta = read_metadata(p)
                if meta is not None:
                    out.append((department, sub, p, meta))
    return out


def package_vocabulary(root: Path) -> set[str]:
    """Every keyword some drawing in the package is tagged with."""
    vocab: set[str] = set()
    for p in sorted(root.rglob("*.svg")):
        meta = read_metadata(p)
        if meta is not None:
            vocab.update(subject_words(meta[2]))
    return vocab


def candidates(files, department: str, vocab: set[str]) -> list[list[Drawing]]:
    """Per source folder of one department, the usable drawings in file-name order."""
    groups: dict[Path, list[Drawing]] = {}
    for dep, sub, p, (title, artist, subjects, licence) in files:
        if dep != department:
            continue
        group = groups.setdefault(p.parent, [])
        artist = re.sub(r"\s*[\[(<][^\])>]*@[^\])>]*[\])>]", "", fix_text(artist))
        artist = re.sub(r"(\S+)@\S+", r"\1", artist)  # no e-mail addresses in the shop
        artist = re.sub(r"https?://(www\.)?", "", artist).strip("/ ")
        if SKIP_ARTISTS.search(artist):
            continue
        if licence not in (None, PUBLIC_DOMAIN):
            continue  # the package is public domain; skip anything marked otherwise anyway
        title = clean_title(fix_text(title), p)
        if len(title) < 3 or BAD_TITLE.search(title) or not re.search(r"[a-z]{3}", title.lower()):
            continue
        tags = clean_tags(subjects, title, sub, vocab)
        if len(tags) < 2:
            continue
        group.append(Drawing(p, department, sub, title, artist, tags))
    return list(groups.values())


def pick(groups: list[list[Drawing]], n: int, seen_titles: set[str]) -> list[Drawing]:
    """Round-robin over the folders so each department mixes its sub-categories;
    a title is used once in the whole catalog."""
    picked: list[Drawing] = []
    queues = [list(g) for g in groups]
    while len(picked) < n and any(queues):
        for q in queues:
            while q:
                d = q.pop(0)
                key = re.sub(r"[^a-z]", "", re.sub(r"\(.*", "", d.title.lower()))
                if key in seen_titles:
                    continue
                png = render_png(d.path)
                if png is None:
                    continue
                seen_titles.add(key)
                d.png = png
                picked.append(d)
                break
            if len(picked) >= n:
                break
    return picked


def describe(d: Drawing) -> str:
    """One sentence (each sentence is one text vector): what, by whom, where, tags."""
    by = f" by {d.artist}" if d.artist else ""
    tags = ", ".join(d.tags[:-1]) + (" and " if len(d.tags) > 1 else "") + d.tags[-1]
    return f"{d.title}, a clip-art drawing{by} in {d.department} ({d.sub}), tagged {tags}."


def tsv_field(s: str) -> str:
    return re.sub(r"[\t\r\n]+", " ", s).strip()


def build(source: Path, out: Path, per_department: int = PER_DEPARTMENT) -> list[Drawing]:
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtCore import qInstallMessageHandler
    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841  QImage text needs it
    qInstallMessageHandler(_collect_qt_warnings)

    files = read_folders(source)
    vocab = package_vocabulary(source)
    seen: set[str] = set()
    chosen: list[Drawing] = []
    ids: set[str] = set()
    for department in DEPARTMENTS:
        got = pick(candidates(files, department, vocab), per_department, seen)
        print(f"{department:20s} {len(got):3d}", file=sys.stderr)
        for d in got:
            base = slug(d.title)
            d.id, k = base, 2
            while d.id in ids:
                d.id, k = f"{base}-{k}", k + 1
            ids.add(d.id)
        chosen += got

    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    for old in images.glob("*.png"):
        if old.stem not in ids:
            old.unlink()
    for d in chosen:
        (images / f"{d.id}.png").write_bytes(d.png)
    lines = ["id\ttitle\tbrand\tcategories\ttext\timage\ttags\tsource"]
    for d in chosen:
        tags = "|".join(f"{w}:{s:g}" for w, s in tag_scores(d.tags))
        lines.append("\t".join(tsv_field(x) for x in (
            d.id, d.title, d.artist, f"{d.department}|{d.sub}", describe(d),
            f"images/{d.id}.png", tags, "openclipart-svg:" + d.path.relative_to(source).as_posix())))
    (out / "items.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return chosen


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, required=True,
                    help="the svg folder of openclipart-svg (…/usr/share/openclipart/svg)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--per-department", type=int, default=PER_DEPARTMENT)
    args = ap.parse_args(argv)
    if not (args.source / "food").is_dir():
        ap.error(f"{args.source}: not the openclipart svg folder (no food/ inside)")
    chosen = build(args.source, args.out, args.per_department)
    size = sum(p.stat().st_size for p in (args.out / "images").glob("*.png"))
    digest = hashlib.sha256((args.out / "items.tsv").read_bytes()).hexdigest()[:12]
    print(f"{len(chosen)} items, images {size / 1e6:.2f} MB, items.tsv sha256 {digest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
