"""MovieLens: movies.dat (`MovieID::Title::Genre|Genre`, Latin-1), ratings.dat
(`UserID::MovieID::Rating::Timestamp`) or an interactions table with a header,
and an optional folder of posters named <MovieID>.jpg.
"""
from __future__ import annotations

from pathlib import Path

from core.errors import InputError
from core.importers import tsv
from core.importers.common import (FirstLines, BadLines, Parsed, check_folder, image_index,
                                   need_id, read_lines, to_ts)
from core.importers.rows import Rows
from core.workspace import Item

MOVIES_ENCODING = "latin-1"   # the GroupLens files are Latin-1, not UTF-8


def parse_movie_line(line: str, path, n: int) -> tuple[str, str, str]:
    """'1::Toy Story (1995)::Animation|Comedy' -> (id, title, categories)."""
    parts = line.split("::")
    if len(parts) < 3:
        raise InputError(f"expected MovieID::Title::Genres, found {len(parts)} field(s)", path, n)
    movie = need_id(parts[0], "movie id", path, n)
    title = "::".join(parts[1:-1]).strip()   # a title may itself contain '::'
    genres = "|".join(g.strip() for g in parts[-1].split("|") if g.strip())
    return movie, title, genres


def parse_rating_line(line: str, path, n: int) -> tuple[str, str, int]:
    """'1::1193::5::978300760' -> (user, movie, ts); the rating is not used (implicit feedback)."""
    parts = line.split("::")
    if len(parts) != 4:
        raise InputError(f"expected UserID::MovieID::Rating::Timestamp, found {len(parts)} field(s)",
                         path, n)
    return (need_id(parts[0], "user id", path, n), need_id(parts[1], "movie id", path, n),
            to_ts(parts[3].strip(), path, n))


def read_ratings(path, encoding, bad: BadLines, progress, limits=None) -> Rows:
    lines = read_lines(path, encoding, limits, progress)
    if "::" not in lines[0]:   # an interactions table with a header (user_id, movie_id, timestamp)
        return tsv.read_interactions(path, "\t", {}, encoding, bad, progress, lines)
    out = Rows()
    append = out.append
    for k, (n, line) in enumerate(lines.numbered()):
        try:
            append(parse_rating_line(line, path, n))
        except InputError as e:
            bad(e)
        if k % 100_000 == 0:
            out.flush()   # pack the tuples read so far into compact columns
            progress("parse", k, len(lines))
    progress("parse", len(lines), len(lines))
    return out


def parse(sources: dict, opts, progress) -> Parsed:
    unknown = set(sources) - {"movies", "ratings", "interactions", "posters"}
    if unknown:
        raise InputError(f"unknown source keys {sorted(unknown)} for movielens; "
                         "use movies, ratings (or interactions), posters")
    parsed = Parsed()
    bad = BadLines(opts.skip_bad_lines, parsed.skipped)
    movies = sources.get("movies")
    ratings = sources.get("ratings") or sources.get("interactions")
    if not movies and not ratings:
        raise InputError("movielens needs movies.dat, ratings, or both")
    posters = sources.get("posters")
    folder = check_folder(posters) if posters else None
    if movies:
        first = FirstLines()
        for n, line in read_lines(movies, opts.encoding or MOVIES_ENCODING, opts.limits,
                                  progress).numbered():
            try:
                movie, title, genres = parse_movie_line(line, movies, n)
                first.claim(movie, "movie id", movies, n)
            except InputError as e:
                bad(e)
                continue
            parsed.items[movie] = Item(id=movie, title=title, categories=genres)
        parsed.sources["movies"] = str(Path(movies).resolve())
    if ratings:
        # ratings.dat is ASCII; an interactions table is UTF-8 unless told otherwise
        parsed.rows = read_ratings(ratings, opts.encoding, bad, progress, opts.limits)
        parsed.sources["ratings"] = str(Path(ratings).resolve())
    parsed.has_interactions = bool(ratings)
    if folder:
        parsed.sources["posters"] = str(folder)
        parsed.image_folder = (folder, image_index(folder))
    return parsed
