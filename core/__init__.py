"""MSM4SR Studio core library: workspace, importers, features, model, training.

Nothing here imports Qt; the app and the `msm4sr` command line both call it.
"""
import sys

__version__ = "0.1.0"

# pip refuses older Pythons (requires-python); this says so plainly when the package is put
# on the path by hand, instead of a ModuleNotFoundError for tomllib deep in an import.
if sys.version_info < (3, 11):
    raise ImportError(f"MSM4SR Studio needs Python 3.11 or newer; this is Python "
                      f"{sys.version.split()[0]} ({sys.executable})")
