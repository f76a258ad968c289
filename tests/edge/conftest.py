"""Fixtures for the edge verifier tests (the world: a cloud, its tenant, edges; see edgeworld.py)."""

import sys
from pathlib import Path

import aiohttp
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from edgeworld import FakeClock, World  # noqa: E402


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
async def world(tmp_path, clock):
    w = World(tmp_path, clock)
    w.http = aiohttp.ClientSession()
    await w.start_cloud()
    w.tenant()
    yield w
    for e in list(w.edges):
        await e.close()
    if w.cloud is not None:
        await w.cloud.close()
    await w.http.close()
