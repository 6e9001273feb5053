"""Exploring a trained model: the item map, similar items, why a recommendation,
and models side by side. Plain functions over a loaded `core.recommend.Recommender`
that return dataclasses (each has `to_dict()` for JSON); the CLI (`core/cli_explore.py`)
and the app call the same ones. Never imports Qt.

    from core.explore import item_map, similar, explain, compare
"""
from core.explore.compare import Comparison, compare, stored_metrics
from core.explore.explain import Explanation, explain
from core.explore.map import ItemMap, item_map, map_rows, write_csv, write_png
from core.explore.similar import Neighbour, similar

__all__ = ["Comparison", "compare", "stored_metrics", "Explanation", "explain", "ItemMap",
           "item_map", "map_rows", "write_csv", "write_png", "Neighbour", "similar"]
