"""Run firmware code on the real MicroPython unix port as a board (tools.boards profiles).

`mp(script, board="esp32")` writes the script into a fresh flash directory (the cwd), puts
firmware/ and a copy of boards/unix/hal.py (as janua_hal) on the path, runs it with the board's
heap and hidden modules, and returns the JSON objects it printed, one per line.
"""

import json
from pathlib import Path

import pytest

from tools.boards import MPRun  # noqa: F401 (tests import it from here too)

VECTORS = json.loads((Path(__file__).resolve().parents[2] / "docs" / "vectors" / "binauth.json").read_text())


@pytest.fixture
def mp(tmp_path):
    return MPRun(tmp_path)


@pytest.fixture
def vectors():
    return VECTORS
