"""The installed home of the janua host software: the `janua` command, the verifier and the files it puts on boards.

The repository keeps four top-level folders: `tools/` (the command line), `verifier/` (the service),
`firmware/` and `boards/` (what goes onto a board). A wheel installs all four inside this one package
(site-packages/janua_host/{tools,verifier,firmware,boards}, see setup.py), so nothing named `tools` or
`verifier` lands at the top of site-packages, where it would clash with another distribution's files.

The code imports itself as `tools.*` and `verifier.*`. Importing this package adds a finder, first on
`sys.meta_path`, that resolves exactly those two top-level names to the copies beside this file (a checkout,
where they sit one folder up, is found the same way). Another distribution's `tools` therefore never shadows ours
inside a janua process, and no other process sees ours. janua_host is an application: `janua` (the entry point
`main`) and `python -m janua_host` are its interface, and the module names inside are not a library API.
"""

import importlib.machinery
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# An installed wheel holds tools/ and verifier/ inside this package; a checkout has them beside it.
HOME = HERE if (HERE / "tools" / "__init__.py").is_file() else HERE.parent
NAMES = ("tools", "verifier")


class _HomeFinder:
    """Finds the top-level `tools` and `verifier` packages in HOME, and nothing else."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name not in NAMES:
            return None
        return importlib.machinery.PathFinder.find_spec(name, [str(HOME)])


if not any(isinstance(f, _HomeFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _HomeFinder())


def main(argv=None):
    """The `janua` command."""
    from tools.cli import main as cli_main
    return cli_main(argv)
