"""OTA tests: run firmware on the MicroPython unix port as an esp32 (its heap), build and sign
releases with the host tools (tools/ota.py) into tmp directories. Helpers live in ota_helpers.py
(importable from the tests: this directory is put on sys.path)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ota_helpers import MP  # noqa: E402
from tools import ota as host  # noqa: E402


@pytest.fixture
def mp(tmp_path):
    return MP(tmp_path)


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    k1, p1, kid1 = host.keygen(d, "release")
    k2, p2, kid2 = host.keygen(d, "rotated")
    k3, p3, kid3 = host.keygen(d, "stranger")
    return {"key": k1, "pub": p1, "kid": kid1, "key2": k2, "pub2": p2, "kid2": kid2,
            "stranger": k3}
