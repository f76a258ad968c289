"""The verifier's HTTP routes that take a body from the field or from an edge, on the app built by
create_app on a SQLite file with the fixed device, driven in process by aiohttp's TestServer and a client session:
POST /v1/edge/reports (edge reports: used chain tokens, binary-auth floors, audit rows;
verifier/edge/routes.py), POST /v1/releases (a multipart OTA bundle; verifier/ota/routes.py over
verifier/ota/core.py), and the device token routes (verifier/tokens/routes.py): /v1/auth/device/token,
/refresh, /sync (with the device's JWT) and /offline.

An input's first byte picks the route (low three bits: ROUTES) and, for releases, whether the body's
first line is its Content-Type (bit 3) instead of `multipart/form-data; boundary=b`; the rest is the
body. In a body, @AUTH@ becomes a fresh binary-auth request of the device (hex) and @JWT@ in the
Authorization header (routes that take one) is a current device token, so seeds get past the
authentication; the clock moves one second per input. The contract is the HTTP one: a malformed
body is a 4xx with the JSON error, never a 500.
"""

import asyncio
import json

import aiohttp
from aiohttp.test_utils import TestServer

from fuzz.harness import Invariant
from fuzz.targets.ota import SIGNER, _manifest, sign
from fuzz.world import DEVICE_ID, KEK, MASTER, T0, insert_device
from verifier import keys
from verifier.ota import core as ota
from verifier.registry import core as registry
from verifier.app import create_app
from verifier.appkeys import SEALER, STORAGE
from verifier.binauth.core import encode_request
from verifier.config import Config
from verifier.tokens.core import TOKEN_KEYS, issue_device_token, policy_of

ALLOWED = ()
BOUNDARY = "b"
# (path, takes the device's JWT); index = the input's first byte & 7 (6 and 7 repeat 0 and 1)
ROUTES = (("/v1/edge/reports", False), ("/v1/releases", False), ("/v1/auth/device/token", False),
          ("/v1/auth/device/refresh", True), ("/v1/auth/device/sync", True), ("/v1/auth/device/offline", False),
          ("/v1/edge/reports", False), ("/v1/releases", False))


def _multipart(parts):
    out = b""
    for name, body in parts:
        out += (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"x\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + body + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def make(workdir):
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    from pathlib import Path
    for suffix in ("", "-wal", "-shm"):
        Path(workdir + "/janua.db" + suffix).unlink(missing_ok=True)
    loop = asyncio.new_event_loop()
    clock = [float(T0)]
    cfg = Config(db_path=workdir + "/janua.db", kek=KEK, clock=lambda: clock[0], http_port=0, udp_port=None,
                 dtls_port=None)
    # a TestServer and a plain session (aiohttp's TestClient keeps every response until it closes,
    # which grows without bound over a million inputs)
    server = TestServer(create_app(cfg), loop=loop)
    loop.run_until_complete(server.start_server())

    async def new_session():
        return aiohttp.ClientSession()
    session = loop.run_until_complete(new_session())
    app = server.app
    st = app[STORAGE]
    tenant = registry.create_tenant(st, "acme", T0)
    insert_device(st, app[SEALER], tenant["id"])
    _, token = registry.issue_token(st, tenant["id"], T0)
    pub = SIGNER.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ota.add_key(st, tenant["id"], {"pub": pub.hex()}, T0, "fuzz")
    admin = f"Bearer {token}"
    bkey = keys.derive_key(MASTER, keys.LABEL_BINAUTH)
    jwt = {"exp": 0}

    def device_jwt(now):
        if now > jwt["exp"] - 600:
            tk = app[TOKEN_KEYS]
            tk.load(now)
            jwt["token"], claims, _ = issue_device_token(tk, st.get_device(DEVICE_ID), policy_of(st, tenant["id"]), now)
            jwt["exp"] = claims["exp"]
        return jwt["token"]

    async def post(path, body, headers):
        async with session.post(server.make_url(path), data=body, headers=headers) as r:
            await r.read()
            return r.status

    def one_input(data):
        sel, body = (data[0], data[1:]) if data else (0, b"")
        clock[0] += 1
        path, bearer = ROUTES[sel & 7]
        ctype = "application/json"
        if path == "/v1/releases":
            ctype = f"multipart/form-data; boundary={BOUNDARY}"
            if sel & 8:
                first, _, body = body.partition(b"\n")
                ctype = first.decode("latin-1").strip()[:200] or "x/y"
        if b"@AUTH@" in body:
            body = body.replace(b"@AUTH@", encode_request(bkey, DEVICE_ID, int(clock[0])).hex().encode())
        headers = {"Content-Type": ctype,
                   "Authorization": f"Bearer {device_jwt(int(clock[0]))}" if bearer else admin}
        try:
            status = loop.run_until_complete(post(path, body, headers))
        except ValueError:      # a header value the client itself refuses to send (e.g. a newline)
            return
        if status >= 500:
            raise Invariant(f"POST {path} answered {status}: {body[:120]!r}")

    return one_input


def seeds(workdir):
    report = {"used": [{"device_id": DEVICE_ID.hex(), "index": 3, "ts": T0}],
              "binauth": [{"device_id": DEVICE_ID.hex(), "last_ts": T0 + 5}],
              "audit": [{"ts": T0, "kind": "auth", "device_id": DEVICE_ID.hex(), "action": "binauth",
                         "transport": "udp", "source": "192.0.2.1:5683", "result": "OK", "reason": "edge"}]}
    out = [b"\x00" + json.dumps(report).encode(), b"\x00{}"]
    files = [("app/main.py", b"print('hello')\n")]
    m = _manifest(files)
    bundle = _multipart([("manifest.json", m), ("manifest.sig", sign(m))] +
                        [("files/" + p, c) for p, c in files])
    out.append(b"\x01" + bundle)
    out.append(b"\x09multipart/form-data; boundary=b\n" + bundle)
    m2 = _manifest([("a.py", b"1")], version="2.0.0", counter=4)
    out.append(b"\x01" + _multipart([("manifest.json", m2), ("manifest.sig", sign(m2)), ("files/a.py", b"1")]))
    out.append(b"\x02" + b'{"auth": "@AUTH@"}')
    out.append(b"\x03" + b"{}")
    out.append(b"\x04" + json.dumps({"used": [0, 1], "have": -1, "ota": {"kind": "app", "version": "1.0.0",
                                                                        "counter": 1}}).encode())
    out.append(b"\x04" + b'{"used": [], "have": 3}')
    out.append(b"\x05" + json.dumps({"token": "00" * 107}).encode())
    return out
