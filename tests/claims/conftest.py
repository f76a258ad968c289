"""Fixtures of the claim tests: the verifier app on a tmp_path SQLite file (or the session's PostgreSQL) with the
fake clock, HTTP only; a tenant with an admin token; a board-side helper that builds claim requests from a batch
secret with hmac/hashlib as docs/claims.md writes them (not with the code under test) and checks an answer the
same way; and a real aiohttp pre-claim hook on a free localhost port whose answers a test scripts."""

import asyncio
import hashlib
import hmac
import json
import os

import pytest
from aiohttp import web

from tests.support import KEK, AdminTenant, clock  # noqa: F401 (fixtures)
from verifier.app import create_app
from verifier.config import Config

OCTETS = {"Content-Type": "application/octet-stream"}


@pytest.fixture
def config(tmp_path, clock):
    return Config(db_path=str(tmp_path / "janua.db"), kek=KEK, clock=clock, http_port=0, udp_port=None,
                  dtls_port=None, notify_tick_s=None, notify_private_targets=True, claim_hook_timeout_s=0.5)


@pytest.fixture
async def client(aiohttp_client, config):
    return await aiohttp_client(create_app(config))


@pytest.fixture
def tenant(client, clock):
    return AdminTenant(client.app, "acme", clock)


def _hkdf(ikm, info):
    prk = hmac.new(b"janua/v1", ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


class Board:
    """A board's claim, written out from docs/claims.md: K_c, K_mac, K_enc; requests; the answer's check."""

    def __init__(self, batch_id_hex, batch_secret, serial):
        self.batch_id, self.serial = bytes.fromhex(batch_id_hex), serial.encode()
        self.k_c = hmac.new(batch_secret, b"janua-claim-v1\x00" + self.serial, hashlib.sha256).digest()
        self.k_mac, self.k_enc = _hkdf(self.k_c, b"claim-mac"), _hkdf(self.k_c, b"claim-enc")

    def request(self, nonce=None):
        nonce = os.urandom(16) if nonce is None else nonce
        body = b"\x01\x01" + self.batch_id + nonce + bytes((len(self.serial),)) + self.serial
        return nonce, body + hmac.new(self.k_mac, body, hashlib.sha256).digest()[:16]

    def open(self, nonce, answer):
        """(device id hex, master secret hex, config dict) of a valid answer to the request with `nonce`."""
        assert answer[:2] == b"\x01\x02"
        n = int.from_bytes(answer[58:60], "big")
        assert len(answer) == 76 + n
        assert hmac.compare_digest(answer[-16:], hmac.new(self.k_mac, nonce + answer[:60 + n], hashlib.sha256).digest()[:16])
        did, snonce = answer[2:10], answer[10:26]
        ks = hmac.new(self.k_enc, nonce + snonce + did, hashlib.sha256).digest()
        return did.hex(), bytes(a ^ b for a, b in zip(answer[26:58], ks)).hex(), json.loads(answer[60:60 + n])


class Claims:
    """The admin API and the claim route of one app, for one tenant."""

    def __init__(self, client, tenant):
        self.client, self.tenant = client, tenant

    async def batch(self, **doc):
        doc.setdefault("name", "line 1")
        doc.setdefault("max_count", 10)
        if "serials" not in doc and "serial_pattern" not in doc:
            doc["serial_pattern"] = "SN-*"
        r = await self.client.post("/v1/claim-batches", json=doc, headers=self.tenant.headers)
        body = await r.json()
        assert r.status == 201, body
        return body, bytes.fromhex(body["batch_secret"])

    def board(self, batch, secret, serial):
        return Board(batch["batch_id"], secret, serial)

    async def post(self, data):
        r = await self.client.post("/v1/claim", data=data, headers=OCTETS)
        return r.status, await r.read()

    async def claim(self, board, nonce=None):
        """(status, answer bytes or the error body) of one claim by `board`, with the nonce used."""
        nonce, req = board.request(nonce)
        status, body = await self.post(req)
        return status, (body if status == 200 else json.loads(body)), nonce

    async def get(self, path):
        r = await self.client.get(path, headers=self.tenant.headers)
        return r.status, await r.json()


@pytest.fixture
def claims(client, tenant):
    return Claims(client, tenant)


class Hook:
    """A pre-claim hook on 127.0.0.1: records requests, answers from `script` then `default`: (status, text), or
    "hang" (never answers). `hold`, when set to an Event, makes every answer wait for it."""

    def __init__(self):
        self.requests, self.script, self.default = [], [], (200, '{"allow": true}')
        self.hold, self.arrived = None, asyncio.Event()
        self.runner = self.url = None

    async def _handle(self, request):
        self.requests.append({"headers": dict(request.headers), "body": await request.read()})
        self.arrived.set()
        if self.hold is not None:
            await self.hold.wait()
        answer = self.script.pop(0) if self.script else self.default
        if answer == "hang":
            await asyncio.Event().wait()
        return web.Response(status=answer[0], text=answer[1], content_type="application/json")

    async def start(self):
        app = web.Application()
        app.router.add_route("POST", "/hook", self._handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/hook"
        return self


@pytest.fixture
async def hook():
    h = await Hook().start()
    yield h
    await h.runner.cleanup()
