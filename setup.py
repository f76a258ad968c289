"""The wheel's layout (pyproject.toml holds the metadata): one import package, janua_host, with the repository's
tools/, verifier/, firmware/ and boards/ copied inside it (janua_host/__init__.py says why and how the code still
imports itself as `tools` and `verifier`). An editable install (`make venv`) copies nothing: janua_host then finds
the folders beside it in the checkout."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
TREES = ("tools", "verifier", "firmware", "boards")
# Build products and caches are never shipped; the sources (.py, .c, .json, .md) are.
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.mpy", "*.so", "*.o", ".*")


class BuildWithTrees(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        dest = Path(self.build_lib) / "janua_host"
        for name in TREES:
            target = dest / name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(ROOT / name, target, ignore=IGNORE)


setup(cmdclass={"build_py": BuildWithTrees})
