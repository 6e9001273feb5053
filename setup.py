"""Build hook: the wheel carries the shipped data inside the package.

assets/ and trained_models/demo stay at the repository's top level (where scripts/ rebuild
them); at build time they are copied to core/shipped/ in the build tree, where core.paths
finds them with importlib.resources. Editable installs skip the copy: core.paths reads the
checkout's folders directly. Everything else is declared in pyproject.toml.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
# (source in the repository, destination under core/shipped/)
SHIPPED = [("assets", "assets"),
           ("trained_models/demo", "trained_models/demo"),
           ("trained_models/README.md", "trained_models/README.md")]
REQUIRED = ["assets/vocabulary.txt", "assets/demo/items.tsv", "assets/demo/interactions.tsv",
            "trained_models/demo/manifest.json", "trained_models/demo/weights.safetensors"]


class BuildWithData(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        missing = [r for r in REQUIRED if not (HERE / r).is_file()]
        if missing:  # never build a wheel that opens an empty app
            raise SystemExit(f"cannot build: shipped data missing: {', '.join(missing)} "
                             f"(an sdist must include them: see MANIFEST.in)")
        dest = Path(self.build_lib) / "core" / "shipped"
        for src, dst in SHIPPED:
            src, dst = HERE / src, dest / dst
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copyfile(src, dst)


setup(cmdclass={"build_py": BuildWithData})
