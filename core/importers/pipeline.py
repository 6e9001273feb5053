"""The shared steps after parsing: dedup -> k-core -> cold-start split -> one write."""
from __future__ import annotations

import gc
import time
from dataclasses import asdict, dataclass, field

from core import splits
from core.errors import InputError
from core.importers import amazon2018, movielens, recbole, tsv
from core.importers.common import BadLines, Parsed, ReadLimits, folder_image
from core.importers.rows import Rows
from core.progress import silent
from core.workspace import Item, Workspace

FORMATS = ("tsv", "csv", "movielens", "amazon2018", "recbole")
TAG_SOURCE = "catalog-tags"


@dataclass
class ImportOptions:
    kcore: int = 5               # drop users and items with fewer interactions, repeatedly
    dedup: bool = True           # keep only the first (user, item) interaction
    cold_share: float = 0.0      # share of the surviving items held out as cold-start items
    seed: int = 0
    skip_bad_lines: bool = False  # skip (and report) bad lines instead of stopping
    encoding: str | None = None   # None: UTF-8 (movies.dat: Latin-1)
    limits: ReadLimits = field(default_factory=ReadLimits)  # caps on line length, decompressed size


@dataclass
class ImportReport:
    users: int = 0
    items: int = 0
    interactions: int = 0
    cold_items: int = 0
    items_without_image: list[str] = field(default_factory=list)
    skipped_lines: list[str] = field(default_factory=list)   # "file:line: reason"
    seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)    # seconds per step
    download_failures: dict[str, str] = field(default_factory=dict)  # item -> reason
    merged_away: list = field(default_factory=list)  # stored rows a re-import's filters removed

    def to_dict(self) -> dict:
        return asdict(self)


def _parse(ws: Workspace, fmt: str, sources: dict, opts: ImportOptions, progress) -> Parsed:
    if fmt in ("tsv", "csv"):
        return tsv.parse(sources, opts, progress, sep="\t" if fmt == "tsv" else ",")
    return {"movielens": movielens.parse, "amazon2018": amazon2018.parse,
            "recbole": recbole.parse}[fmt](sources, opts, progress)


def _existing(ws: Workspace, ids: list[str]) -> list[Item]:
    if not ids:
        return []
    wanted = set(ids)
    return [it for it in ws.items() if it.id in wanted]


def _check(opts: ImportOptions) -> None:
    if isinstance(opts.kcore, bool) or not isinstance(opts.kcore, int) or opts.kcore < 0:
        raise InputError(f"kcore must be a whole number >= 0, got {opts.kcore!r}")
    if not 0.0 <= opts.cold_share < 1.0:
        raise InputError(f"cold_share must be in [0, 1), got {opts.cold_share!r}")


def _reporting(rows: Rows, progress, every: int = 65536):
    """Pass rows through, reporting write progress."""
    total, done = len(rows), 0
    for chunk in rows.chunks(every):
        progress("write", done, total)
        yield from chunk
        done += len(chunk)
    progress("write", total, total)


def import_catalog(ws: Workspace, fmt: str, sources: dict, options: ImportOptions | None = None,
                   progress=silent) -> ImportReport:
    """Import a catalog into `ws`. Raises InputError on bad input; then nothing is stored."""
    t0 = time.perf_counter()
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    opts = options or ImportOptions()
    _check(opts)
    sources = {k: v for k, v in dict(sources).items() if v not in (None, "", False)}

    # Parsing makes a million small tuples; the cyclic GC would rescan them all
    # again and again (they hold no cycles), so it is paused for the import.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _import(ws, fmt, sources, opts, progress, t0)
    finally:
        if was_enabled:
            gc.enable()


def _import(ws, fmt, sources, opts, progress, t0) -> ImportReport:
    report = ImportReport()
    steps = report.steps

    # 1. parse (all rows in memory, file order)
    parsed = _parse(ws, fmt, sources, opts, progress)
    bad = BadLines(opts.skip_bad_lines, parsed.skipped)
    t1 = time.perf_counter()
    steps["parse"] = t1 - t0

    # 2. process
    progress("process", 0, 3)
    # rows are compact columns (core.importers.rows): 10M interactions fit in a few hundred MB
    rows = parsed.rows if isinstance(parsed.rows, Rows) else Rows(parsed.rows)
    n_read = len(rows)
    # dedup sorts every row; skip it when no (user, item) pair repeats (same result)
    if opts.dedup and rows.has_repeats():
        rows = rows.dedup()
    progress("process", 1, 3)
    # a re-import is filtered merged with the stored data, not alone: the items, the cold split
    # and the report then come from the rows that stay, as a first import of the whole would
    merging = ws.db.execute("SELECT 1 FROM interactions LIMIT 1").fetchone() is not None
    if merging:
        rows, merged_away = _merge(ws, rows, opts)
    elif not rows.is_kcore(opts.kcore):   # a k-core data set (ml-1m) needs no pass
        rows = rows.kcore(opts.kcore)
    progress("process", 2, 3)
    if parsed.has_interactions:
        if not rows and not merging:
            raise InputError(f"no interactions left of {n_read} after "
                             f"{'de-duplication and ' if opts.dedup else ''}the {opts.kcore}-core "
                             f"filter; lower kcore (--kcore) for a small data set")
        ids = rows.item_ids()   # interacted items, first-seen order
    else:
        ids = list(parsed.items)
    # An interacted id missing from this catalog becomes a bare item, but a bare
    # item must not blank the title/text an earlier import stored for that id.
    bare = [i for i in ids if i not in parsed.items]
    known = {it.id: it for it in _existing(ws, bare)}
    items = [parsed.items.get(i) or known.get(i) or Item(id=i) for i in ids]
    if parsed.image_folder:
        folder, index = parsed.image_folder
        for it in items:
            if not it.image:
                try:
                    it.image = folder_image(folder, index, it.id)
                except InputError as e:
                    bad(e)
    if sources.get("download") and parsed.image_urls:
        from core.importers.download import download_images
        urls = {it.id: parsed.image_urls[it.id] for it in items
                if not it.image and it.id in parsed.image_urls}
        got, report.download_failures = download_images(
            urls, ws.path / "images", progress, allow_private=bool(sources.get("allow_private")))
        parsed.sources["download"] = str(ws.path / "images")
        for it in items:
            it.image = got.get(it.id, it.image)
    if opts.cold_share > 0:
        cold = set(splits.choose_cold(ids, opts.cold_share, opts.seed))
    else:   # no split asked for: keep the flags an earlier import set
        cold = {r[0] for r in ws.db.execute("SELECT id FROM items WHERE cold=1")}
    for it in items:
        it.cold = it.id in cold
    progress("process", 3, 3)
    t2 = time.perf_counter()
    steps["process"] = t2 - t1

    # 3. write, all or nothing
    report.merged_away = merged_away if merging else []
    _write(ws, fmt, parsed, items, rows, ids, cold, opts, report, n_read, progress)
    t3 = time.perf_counter()
    steps["write"] = t3 - t2

    report.users, report.interactions = rows.n_users(), len(rows)   # this import's rows, as stored
    report.items = len(items)
    report.cold_items = sum(1 for it in items if it.cold)
    report.items_without_image = sorted(it.id for it in items if not it.image)
    report.skipped_lines = parsed.skipped
    report.seconds = time.perf_counter() - t0
    return report


def _merge(ws, rows: Rows, opts: ImportOptions) -> tuple[Rows, list]:
    """(this import's rows that stay, the stored rows that go) once the stored and the new rows
    are de-duplicated and k-cored together, so a corrected timestamp for a stored pair does not
    leave both rows. The earliest row of a pair stays, as in a first import."""
    stored = Rows(ws.db.execute("SELECT user, item, ts FROM interactions ORDER BY pos"))
    gone, stay = stored.merged(rows, opts.dedup, opts.kcore)
    if len(gone) == len(stored) and not len(stay):
        raise InputError(f"no interactions would be left of {len(stored)} after merging this import "
                         f"and the {opts.kcore}-core filter; lower kcore (--kcore)")
    return rows.take(stay), list(stored.take(gone))


def _write(ws, fmt, parsed, items, rows, ids, cold, opts, report, n_read, progress) -> None:
    with ws.transaction() as db:
        ws.upsert_items(items, db)
        ws.add_interactions(_reporting(rows, progress), db)
        db.executemany("DELETE FROM interactions WHERE user=? AND item=? AND ts=?", report.merged_away)
        if opts.cold_share > 0:
            ws.set_cold(sorted(cold), db)
        tags = [(i, TAG_SOURCE, parsed.tags[i]) for i in ids if i in parsed.tags]
        if tags:
            ws.set_keywords(tags, db)
        if parsed.sources.get("download"):
            for it in items:   # a later successful download clears an earlier failure
                failure = report.download_failures.get(it.id)
                if failure or it.image:
                    ws.set_problem(it.id, "image",
                                   f"download failed: {failure}" if failure else None, db)
        ws.set_meta("import", {"format": fmt, "sources": parsed.sources,
                               "options": asdict(opts), "time": time.time(),
                               "rows_read": n_read, "rows_kept": len(rows)}, db)
