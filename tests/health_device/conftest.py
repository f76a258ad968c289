"""The board's health report (firmware/janua/health.py) on the MicroPython unix port with the esp32
profile's heap (tools.boards.MPRun); reports are decoded with the verifier's codec."""

import pytest

from tools.boards import MPRun


@pytest.fixture
def mp(tmp_path):
    return MPRun(tmp_path)
