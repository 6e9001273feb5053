"""The built-in demo: a workspace made from assets/demo (public-domain clip art
and simulated shoppers), built on first use without network, GPU or CLIP.

    ws_path = ensure_demo_workspace(progress)   # seconds the first time, then instant

The workspace lives in demo_dir() ($MSM4SR_DEMO_DIR, else the platform's user
data folder: core.paths). The assets and the demo model are the shipped ones
(core.paths: the package's copy in a wheel, the checkout's folders otherwise). It
is rebuilt when the shipped assets change: a hash of them is kept in the
workspace meta "demo". Image keywords are the catalog's own tags (source
"catalog-tags"), never CLIP output.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

from core import paths
from core.progress import ProgressFn, silent

DEMO_ASSETS = paths.demo_assets_dir()
DEMO_MODEL = paths.demo_model_dir()
BUILD_VERSION = 1          # bump when the way the workspace is built changes
SOURCE_DIR = "source"      # the copied assets inside the workspace
DEMO_SEQUENCE = "demo"     # saved sequence the app opens for --screenshot
KCORE = 5
COLD_SHARE = 0.0


def demo_dir() -> Path:
    """Where the demo workspace lives (not created here)."""
    return paths.demo_dir()


def _asset_files(assets: Path) -> list[Path]:
    return [assets / "items.tsv", assets / "interactions.tsv",
            *sorted((assets / "images").glob("*.png"))]


def assets_fingerprint(assets: Path = DEMO_ASSETS) -> str:
    """sha256 over the build version and every asset file's name and bytes."""
    h = hashlib.sha256(f"msm4sr-demo:{BUILD_VERSION}\n".encode())
    for p in _asset_files(assets):
        h.update(p.relative_to(assets).as_posix().encode() + b"\0")
        h.update(p.read_bytes())
    return h.hexdigest()


def is_demo(ws_path) -> bool:
    """True when ws_path is a workspace built by ensure_demo_workspace."""
    from core.workspace import DB_NAME, Workspace
    path = Path(ws_path)
    if not (path / DB_NAME).is_file():
        return False
    try:
        with Workspace.open(path) as ws:
            return bool(ws.get_meta("demo"))
    except Exception:  # noqa: BLE001  an unreadable workspace is simply not the demo
        return False


def _up_to_date(path: Path, fingerprint: str) -> bool:
    from core.features import store
    from core.workspace import DB_NAME, Workspace
    if not (path / DB_NAME).is_file():
        return False
    try:
        with Workspace.open(path) as ws:
            meta = ws.get_meta("demo") or {}
            row = ws.db.execute("SELECT id FROM items WHERE image IS NOT NULL LIMIT 1").fetchone()
            first = ws.item(row[0]) if row else None
            ok_image = first is None or ws.image_path(first).is_file()
    except Exception:  # noqa: BLE001  a broken demo workspace is rebuilt, never fatal
        return False
    return (meta.get("fingerprint") == fingerprint and ok_image
            and store.path_for(path / "features", "text").is_file()
            and store.path_for(path / "features", "image").is_file())


def ensure_demo_workspace(progress: ProgressFn = silent, assets: Path = DEMO_ASSETS) -> Path:
    """The demo workspace's path, building it first when missing or out of date."""
    path = demo_dir()
    fingerprint = assets_fingerprint(assets)
    if _up_to_date(path, fingerprint):
        return path
    tmp = path.parent / f".{path.name}.build-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        build_demo_workspace(tmp, assets, fingerprint, progress)
        old = path.parent / f".{path.name}.old-{os.getpid()}"
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def build_demo_workspace(path: Path, assets: Path = DEMO_ASSETS, fingerprint: str | None = None,
                         progress: ProgressFn = silent) -> dict:
    """Import the demo assets into a new workspace at `path` and build its features.

    The assets are copied into the workspace and image paths stored relative to
    it, so the folder can be moved and does not depend on the installed program."""
    from core.features.build import build_features
    from core.importers import ImportOptions, import_catalog
    from core.workspace import Workspace

    t0 = time.perf_counter()
    source = path / SOURCE_DIR
    source.mkdir(parents=True)
    for name in ("items.tsv", "interactions.tsv", "README.md"):
        if (assets / name).is_file():
            shutil.copyfile(assets / name, source / name)
    shutil.copytree(assets / "images", source / "images")
    progress("demo: copy assets", 1, 1)

    with Workspace.create(path) as ws:
        report = import_catalog(ws, "tsv", {"interactions": source / "interactions.tsv",
                                            "items": source / "items.tsv"},
                                ImportOptions(kcore=KCORE, cold_share=COLD_SHARE), progress=progress)
        with ws.transaction() as db:
            prefix = str(source.resolve()) + os.sep
            for item_id, image in db.execute("SELECT id, image FROM items").fetchall():
                if image and image.startswith(prefix):
                    rel = f"{SOURCE_DIR}/{Path(image[len(prefix):]).as_posix()}"
                    db.execute("UPDATE items SET image=? WHERE id=?", (rel, item_id))
        t1 = time.perf_counter()
        features = build_features(ws, keywords_from="catalog-tags", progress=progress)
        t2 = time.perf_counter()
        ws.save_sequence(DEMO_SEQUENCE, demo_sequence(ws))
        info = {"fingerprint": fingerprint or assets_fingerprint(assets),
                "build_version": BUILD_VERSION, "built": time.time(),
                "seconds": {"import": round(t1 - t0, 2), "features": round(t2 - t1, 2),
                            "total": round(time.perf_counter() - t0, 2)},
                "items": report.items, "users": report.users,
                "interactions": report.interactions,
                "image_source": features.image_source,
                "simulated": True}
        ws.set_meta("demo", info)
    return info


def demo_sequence(ws) -> list[str]:
    """A short, readable basket for screenshots: breakfast shopping that turns into
    a party. Falls back to the first shopper's first items if the story's items are gone."""
    story = ["an-apple", "bread", "milk", "cheese", "cake", "balloons"]
    have = set(ws.item_ids())
    seq = [i for i in story if i in have]
    if len(seq) >= 4:
        return seq
    first = next(iter(ws.sequences().values()), [])
    return first[:6]
