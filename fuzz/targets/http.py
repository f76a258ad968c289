"""The verifier's HTTP routes that take a body from the field or from an edge: POST /v1/edge/reports
(edge reports: used chain tokens, binary-auth floors, audit rows; verifier/edge_http.py) and
POST /v1/releases (a multipart OTA bundle; verifier/ota_http.py over verifier/ota.py), on the app
built by create_app on a SQLite file, driven in process by aiohttp's test client.

An input's first byte picks the route and the Content-Type (bit 0: releases; bit 1: the releases
body's first line is its Content-Type instead of `multipart/form-data; boundary=b`); the rest is
the body. The contract is the HTTP one: a malformed body is a 4xx with the JSON error, never a 500.
"""

import asyncio
import json

from aiohttp.test_utils import TestClient, TestServer

from fuzz.harness import Invariant
from fuzz.targets.ota import SIGNER, _manifest, sign
from fuzz.world import DEVICE_ID, KEK, T0
from verifier import ota, registry
from verifier.app import create_app
from verifier.appkeys import STORAGE
from verifier.config import Config

ALLOWED = ()
BOUNDARY = "b"


def _multipart(parts):
    out = b""
    for name, body in parts:
        out += (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"x\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + body + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def make(workdir):
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    loop = asyncio.new_event_loop()
    cfg = Config(db_path=workdir + "/janua.db", kek=KEK, clock=lambda: float(T0), http_port=0, udp_port=None,
                 dtls_port=None)
    client = TestClient(TestServer(create_app(cfg)), loop=loop)
    loop.run_until_complete(client.start_server())
    st = client.app[STORAGE]
    tenant = registry.create_tenant(st, "acme", T0)
    _, token = registry.issue_token(st, tenant["id"], T0)
    pub = SIGNER.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ota.add_key(st, tenant["id"], {"pub": pub.hex()}, T0, "fuzz")
    auth = {"Authorization": f"Bearer {token}"}

    async def post(path, body, ctype):
        async with client.post(path, data=body, headers=dict(auth, **{"Content-Type": ctype})) as r:
            await r.read()
            return r.status

    def one_input(data):
        sel, body = (data[0], data[1:]) if data else (0, b"")
        if sel & 1:
            path = "/v1/releases"
            ctype = f"multipart/form-data; boundary={BOUNDARY}"
            if sel & 2:
                first, _, body = body.partition(b"\n")
                ctype = first.decode("latin-1").strip()[:200] or "x/y"
        else:
            path, ctype = "/v1/edge/reports", "application/json"
        try:
            status = loop.run_until_complete(post(path, body, ctype))
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
    out.append(b"\x03multipart/form-data; boundary=b\n" + bundle)
    m2 = _manifest([("a.py", b"1")], version="2.0.0", counter=4)
    out.append(b"\x01" + _multipart([("manifest.json", m2), ("manifest.sig", sign(m2)), ("files/a.py", b"1")]))
    return out
