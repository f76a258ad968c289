"""Board attestation on the device: firmware/janua/attest.py, attestnet.py and the hal pieces, run on the
MicroPython unix port with the esp32 profile's heap (tools.boards.MPRun). The evidence a board makes is
decoded with the verifier's codec (verifier/attest/evidence.py) and its tag checked with the vector key."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tools.boards import MPRun  # noqa: E402


@pytest.fixture
def mp(tmp_path):
    return MPRun(tmp_path)
