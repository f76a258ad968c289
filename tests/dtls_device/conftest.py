"""Fixtures for the device DTLS tests; the helpers live in dtls_peers.py beside this file."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dtls_peers import MPRun  # noqa: E402


@pytest.fixture
def mp(tmp_path):
    return MPRun(tmp_path)
