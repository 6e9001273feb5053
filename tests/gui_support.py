"""Workspaces for the GUI tests, built directly on the real SQLite store.

`ml1m_workspace` takes a slice of ../shared/datasets/ml-1m-posters (posters are
referenced by absolute path, never copied); `synthetic_workspace` makes a large
catalog without images for the 100k-item tests.
"""
from __future__ import annotations

import time
from pathlib import Path

from core.workspace import Item, Workspace

SHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"


def close_window(w) -> None:
    """Close a MainWindow the way a test must: its workers finished, then its workspace closed."""
    from PySide6.QtWidgets import QApplication
    from gui.workers import wait_all
    w.close()
    wait_all()
    QApplication.processEvents()
    if w.session.ws is not None:
        w.session.ws.close()


def save_shot(widget, name: str) -> Path:
    """Render `widget` to artifacts/screenshots/NAME at the repository root (whatever the
    working directory) and check what was written: a readable image of the widget's size
    that is not one flat colour."""
    from PySide6.QtGui import QImage
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    pm = widget.grab()
    assert not pm.isNull() and pm.save(str(path)), f"could not write {path}"
    img = QImage(str(path))
    assert not img.isNull() and (img.width(), img.height()) == (pm.width(), pm.height()), path
    w, h = img.width(), img.height()
    colours = {img.pixel(x * (w - 1) // 15, y * (h - 1) // 15) for x in range(16) for y in range(16)}
    assert len(colours) > 1, f"{path} is blank"
    return path


def ml1m_workspace(ml1m: Path, dest: Path, n_items: int = 300, max_rows: int = 60000,
                   tags: bool = True) -> Path:
    items = []
    with open(ml1m / "movies.dat", encoding="latin-1") as f:
        for line in f:
            mid, title, genres = line.rstrip("\n").split("::")
            poster = ml1m / "posters" / f"{mid}.jpg"
            items.append(Item(id=mid, title=title, categories=genres,
                              text=f"{title}, a {genres.replace('|', ' and ').lower()} film.",
                              image=str(poster) if poster.exists() else None))
            if len(items) >= n_items:
                break
    ids = {it.id for it in items}
    rows = []
    with open(ml1m / "interactions.tsv") as f:
        next(f)
        for k, line in enumerate(f):
            if k >= max_rows * 4:
                break
            u, i, t = line.split("\t")
            if i in ids:
                rows.append((u, i, int(t)))
            if len(rows) >= max_rows:
                break
    ws = Workspace.create(dest)
    with ws.transaction() as db:
        ws.upsert_items(items, db)
        ws.add_interactions(rows, db)
        if tags:
            ws.set_keywords([(it.id, "catalog-tags",
                              [(g.lower(), 1.0 - 0.1 * r) for r, g in enumerate(it.categories.split("|"))])
                             for it in items], db)
    ws.close()
    return dest


def synthetic_workspace(dest: Path, n: int = 100_000) -> Path:
    """n items (no images), a few interactions; built with executemany in about a second."""
    ws = Workspace.create(dest)
    cats = ["Books", "Music", "Garden", "Toys", "Kitchen", "Sports", "Tools", "Beauty"]
    now = time.time()
    with ws.transaction() as db:
        db.executemany(
            "INSERT INTO items (id, title, brand, categories, text, image, is_new, cold, added) "
            "VALUES (?,?,?,?,?,NULL,0,0,?)",
            ((f"i{k:06d}", f"Product {k} {cats[k % 8].lower()} edition", "", f"{cats[k % 8]}|Shop",
              f"description of product {k}", now + k) for k in range(n)))
        ws.add_interactions(((f"u{k % 500}", f"i{(k * 7919) % n:06d}", k) for k in range(20000)), db)
    ws.close()
    return dest
