"""Helpers shared by the verifier-side suites (tests/verifier, ota_verifier, tokens_verifier, edge): the
fixed KEK and start time, a fake clock (tests never sleep: time moves only when a test moves it), a
tenant with an admin token made straight through the registry, and a device that builds binary auth
requests, and the three fixtures of a suite that drives the app in-process (clock, config, client:
import them into the suite's conftest). Each suite's conftest adds what only it needs by subclassing.
For suites where a board on the unix port talks to a real verifier: the `live_server` fixture and
`run_mp_json`."""

import asyncio
import json
import sqlite3
import time

import pytest

from tools.boards import micropython_cmd

from verifier import keys
from verifier.registry import core as registry
from verifier.app import create_app, start_server
from verifier.appkeys import SEALER, STORAGE
from verifier.binauth.core import decode_reply, encode_request
from verifier.config import Config

KEK = bytes(range(32))
T0 = 1_767_225_600


def app_storage(path):
    """The storage a verifier built in process opens for the registry file `path`: SQLite, or the PostgreSQL
    database standing for that path under JANUA_TEST_BACKEND=postgresql (tests/conftest.py storage_backend), so
    a test can seed it before a verifier starts, or read it after the verifier stopped."""
    import verifier.app                   # looked up at the call: the session's backend replaces it
    return verifier.app.open_storage(str(path))


def cli_db(path):
    """What a `janua` command takes as --db to reach the registry a verifier built in process opens for `path`: the
    path itself, or under JANUA_TEST_BACKEND=postgresql the URL of the PostgreSQL schema standing for it (for the
    commands that take a URL: tenant, token-key, mqtt)."""
    import os
    if os.environ.get("JANUA_TEST_BACKEND", "sqlite") != "postgresql":
        return str(path)
    st = app_storage(path)
    st.close()
    return st.url


def fail_inserts(db, table, name, when="true"):
    """Make every insert into `table` for which `when` (an SQL condition on NEW) holds fail with a constraint
    error, by a trigger called `name`, on a store's connection `db` (SQLite or PostgreSQL): a write that cannot be
    made durable. stop_failing(db, table, name) removes it."""
    if isinstance(db, sqlite3.Connection):
        db.execute(f"CREATE TRIGGER {name} BEFORE INSERT ON {table} WHEN {when} BEGIN SELECT RAISE(ABORT, '{name}'); END")
    else:
        db.executescript(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF {when} THEN "
                         f"RAISE EXCEPTION '{name}' USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END $$; "
                         f"CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()")


def stop_failing(db, table, name):
    if isinstance(db, sqlite3.Connection):
        db.execute(f"DROP TRIGGER {name}")
    else:
        db.executescript(f"DROP TRIGGER {name} ON {table}; DROP FUNCTION {name}()")


class FakeClock:
    def __init__(self, now=T0):
        self.now = float(now)

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class AuthDevice:
    """A provisioned device as the test sees it: id, master secret, binary-auth key."""

    def __init__(self, hex_id, master_hex, clock=None):
        self.hex, self.id = hex_id, bytes.fromhex(hex_id)
        self.master = bytes.fromhex(master_hex)
        self.key = keys.derive_key(self.master, keys.LABEL_BINAUTH)
        self.clock, self.last = clock, 0

    def request(self, ts=None):
        """A 20-byte binary auth request at `ts`; without one, the clock's time, strictly increasing."""
        if ts is None:
            ts = self.last = max(int(self.clock()), self.last + 1)
        return encode_request(self.key, self.id, int(ts))

    def auth(self):
        """A fresh request as hex (the `auth` field of device routes)."""
        return self.request().hex()

    def reply(self, req, data):
        return decode_reply(self.key, req, data)


class AdminTenant:
    """A tenant and one admin token, made through the registry of a running app."""

    def __init__(self, app, name, clock):
        st = app[STORAGE]
        self.app, self.clock = app, clock
        self.tenant = registry.create_tenant(st, name, clock())
        self.id = self.tenant["id"]
        self.token_id, self.token = registry.issue_token(st, self.id, clock())
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def provision(self, rows, status="active"):
        """Provision rows (serial numbers filled in) through the registry; [(device id hex, master hex)]."""
        rows = [dict(r, serial_number=r.get("serial_number") or f"SN-{keys.new_token()[4:20]}") for r in rows]
        out = registry.provision_bulk(self.app[STORAGE], self.app[SEALER], self.id, rows, self.clock())
        made = []
        for r in out["results"]:
            if not r["ok"]:
                raise AssertionError(r)
            if status != "provisioning":
                self.app[STORAGE].update_device(self.id, bytes.fromhex(r["device_id"]), {"status": status})
            made.append((r["device_id"], r["master_secret"]))
        return made


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def config(tmp_path, clock):
    """The verifier on a tmp_path SQLite file, the fake clock, HTTP only (no UDP or DTLS sockets)."""
    return Config(db_path=str(tmp_path / "janua.db"), kek=KEK, clock=clock, http_port=0, udp_port=None,
                  dtls_port=None)


@pytest.fixture
async def client(aiohttp_client, config):
    return await aiohttp_client(create_app(config))


@pytest.fixture
async def live_server(tmp_path):
    """A real verifier on a tmp_path SQLite file, HTTP on a free port (no UDP or DTLS), on real time: a
    device's binary-auth timestamps come from its own clock (set from the server's replies)."""
    cfg = Config(db_path=str(tmp_path / "janua.db"), kek=KEK, clock=time.time, http_port=0, udp_port=None,
                 dtls_port=None)
    h = await start_server(cfg)
    yield h
    await h.close()


async def run_mp_json(path, flash, lib, board="esp32", timeout=120):
    """Run the script at `path` on the MicroPython unix port with `board`'s profile (its heap), in the
    board's flash folder `flash` with `lib` on its module path: (the JSON values it printed, one per
    line, in order; its whole output)."""
    argv, env = micropython_cmd(board, path, path=[lib])
    p = await asyncio.create_subprocess_exec(*argv, env=env, cwd=flash, stdout=asyncio.subprocess.PIPE,
                                             stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(p.communicate(), timeout)
    lines = []
    for line in out.decode().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            pass
    return lines, out.decode() + err.decode()
