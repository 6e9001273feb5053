"""Catalog importers: read a data set, process it (dedup, k-core, cold-start
split) and write it into a workspace in one transaction.

    report = import_catalog(ws, "movielens", {"movies": p, "ratings": p, "posters": d},
                            ImportOptions(kcore=5), progress=silent)

Source keys per format:
  tsv / csv   interactions (user,item,timestamp), items (id,title,brand,categories,text,
              image,tags), columns {our field: their header}, images_root (folder)
  movielens   movies (movies.dat, Latin-1), ratings (ratings.dat or a user_id/movie_id/
              timestamp table; "interactions" is accepted too), posters (folder of <id>.jpg)
  amazon2018  reviews, meta (JSON lines, .gz allowed), images (folder of <asin>.<ext>)
              or download=True (first image URL of each item into WS/images)
  recbole     inter (<name>.inter), item (<name>.item)
Bad input raises InputError naming the file and line (or item); nothing is stored then.
"""
from core.importers.pipeline import FORMATS, ImportOptions, ImportReport, import_catalog

__all__ = ["FORMATS", "ImportOptions", "ImportReport", "import_catalog"]
