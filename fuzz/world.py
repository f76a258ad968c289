"""A deterministic verifier world for the fuzz harnesses: a real SQLite registry on a temporary file,
the KEK of the test suites, a tenant and one provisioned, active device whose id and master secret
are fixed (so recorded seeds, e.g. a whole DTLS handshake, replay byte for byte in every run), and a
seeded byte generator to inject as `rand=` wherever a component wants randomness.

Nothing here is a mock: BinAuthCore, DTLSAuth, DTLSServer and CoAPResources are the real classes,
over the real storage. The clock is a number the harness passes as `now`.
"""

import hashlib
import json
import os
import tempfile
from pathlib import Path

from verifier import keys
from verifier.registry import core as registry
from verifier.binauth.core import BinAuthCore
from verifier.registry.model import PSK_LIFETIME_S
from verifier.store import SQLiteStorage

ROOT = Path(__file__).resolve().parents[1]
# The shared test vectors, published beside the docs (docs/vectors/README.md).
VECTOR_DIRS = (ROOT / "docs" / "vectors",)

KEK = bytes(range(32))
T0 = 1_767_225_600                    # the start time of the test suites (2026-01-01)
TENANT = "acme"
# the device of the binary-auth vectors (binauth.json), so their requests are valid seeds
DEVICE_ID = bytes.fromhex("3f9a0c1b7d2e4a65")
MASTER = bytes(range(32))
PERMISSIONS = 0xF


def vectors(name):
    """The parsed JSON vector file `name` from the first vector folder that has it (None if none)."""
    for d in VECTOR_DIRS:
        p = d / name
        if p.is_file():
            return json.loads(p.read_text())
    return None


class DetRand:
    """`rand(n)`: n bytes from SHA-256 in counter mode over a fixed seed (reset() starts over)."""

    def __init__(self, seed=b"janua-fuzz"):
        self.seed = seed
        self.reset()

    def reset(self):
        self.n = 0
        self.buf = b""

    def __call__(self, n):
        while len(self.buf) < n:
            self.buf += hashlib.sha256(self.seed + self.n.to_bytes(8, "big")).digest()
            self.n += 1
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def insert_device(storage, sealer, tenant_id):
    """Provision the fixed device (DEVICE_ID, MASTER), active, in `tenant_id` (the registry's own
    provisioning draws a random id and secret, which recorded seeds could not replay)."""
    sealed = sealer.seal(MASTER, DEVICE_ID, tenant_id, bytes(12))
    meta = json.dumps({"capabilities": [], "tags": []})
    with storage.transaction():
        storage.insert_devices([(DEVICE_ID, tenant_id, "SN-FUZZ-1", None, None, "symmetric", sealed, meta, "active",
                                 T0, T0, 50, 0, 0, PERMISSIONS, 0, T0 + PSK_LIFETIME_S)])


class World:
    """The registry, the sealer, the tenant and the device, on a fresh SQLite file."""

    def __init__(self, workdir=None):
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="janua-fuzz-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.dir / "janua.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.db_path) + suffix).unlink(missing_ok=True)
        self.storage = SQLiteStorage(str(self.db_path))
        self.sealer = keys.Sealer(KEK)
        self.tenant = registry.create_tenant(self.storage, TENANT, T0)
        self.tenant_id = self.tenant["id"]
        self.device_id, self.master = DEVICE_ID, MASTER
        insert_device(self.storage, self.sealer, self.tenant_id)
        self.binauth_key = keys.derive_key(MASTER, keys.LABEL_BINAUTH)
        self.identity = f"{DEVICE_ID.hex()}@{TENANT}".encode()
        self.psk = keys.dtls_psk(MASTER, 0)

    def core(self, rand=None):
        return BinAuthCore(self.storage, self.sealer, rand=rand or DetRand(b"binauth"))

    def close(self):
        self.storage.close()


def rss_kib():
    """This process's peak resident set (VmHWM) in KiB, 0 where /proc is missing."""
    try:
        with open(f"/proc/{os.getpid()}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
