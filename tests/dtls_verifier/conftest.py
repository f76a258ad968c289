"""Fixtures for the DTLS verifier tests: a verifier on real sockets (start_server, DTLS on a free port,
tmp_path SQLite), a tenant, devices with their DTLS identity and PSK, and peers run as subprocesses."""

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import KEK, T0, FakeClock  # noqa: F401 (T0: tests import it from here)
from verifier import keys
from verifier.registry import core as registry
from verifier.app import start_server
from verifier.appkeys import CORE, DTLS, SEALER, STORAGE
from verifier.config import Config
from verifier.dtls.auth import psk_for

TENANT = "acme"
ROOT = Path(__file__).parents[2]
MICROPYTHON = Path(sys.executable).parent / "micropython"


class Device:
    def __init__(self, hex_id, master_hex, tenant=TENANT):
        self.hex = hex_id
        self.id = bytes.fromhex(hex_id)
        self.master = bytes.fromhex(master_hex)
        self.psk = psk_for(self.master)
        self.identity = f"{hex_id}@{tenant}"


class Verifier:
    def __init__(self, handle, clock):
        self.handle, self.clock = handle, clock
        self.app = handle.app
        self.storage = handle.app[STORAGE]
        self.tenant = registry.create_tenant(self.storage, TENANT, clock())
        self.endpoint = None

    @property
    def port(self):
        return self.handle.dtls_port

    @property
    def dtls(self):
        """The DTLSServer core behind the endpoint."""
        return self.app[DTLS].server

    def device(self, status="active", **row):
        row.setdefault("serial_number", f"SN-{keys.new_token()[4:16]}")
        out = registry.provision_bulk(self.storage, self.app[SEALER], self.tenant["id"], [row], self.clock())
        r = out["results"][0]
        assert r["ok"], r
        dev = Device(r["device_id"], r["master_secret"])
        if status != "provisioning":
            self.storage.update_device(self.tenant["id"], dev.id, {"status": status})
        return dev

    def audit(self, device=None):
        return self.storage.list_audit(self.tenant["id"], device.hex if device else None)

    def all_audit(self):
        """Every audit row, after writing the summaries of unauthenticated refusals still open (as the
        verifier does when their interval ends, or at shutdown)."""
        self.storage.add_audit(self.app[CORE].summary.drain())
        return [dict(r) for r in self.storage._db.execute("SELECT * FROM audit ORDER BY seq")]


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
async def verifier(tmp_path, clock):
    cfg = Config(db_path=str(tmp_path / "janua.db"), kek=KEK, clock=clock, http_port=0, udp_port=None, dtls_port=0)
    handle = await start_server(cfg)
    yield Verifier(handle, clock)
    await handle.close()


@pytest.fixture
def device(verifier):
    return verifier.device()


async def run(argv, stdin=b"", timeout=30):
    """Run a peer process without blocking the event loop (the verifier runs in it): (rc, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(*argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                stderr=subprocess.PIPE, cwd=ROOT)
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        return None, out.decode(errors="replace"), err.decode(errors="replace")
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def need(tool):
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed")
    return path
