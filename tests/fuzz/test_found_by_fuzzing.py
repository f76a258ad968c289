"""Regression tests for verifier crashes the host fuzz targets found (fuzz/targets/): each input is
the one that crashed, or its shape, and the expected answer is the documented refusal."""

import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.support import T0, AdminTenant, clock, client, config  # noqa: F401 (fixtures)
from verifier.ota import core as ota
from verifier.registry import core as registry
from verifier.store import SQLiteStorage

DEEP = b"[" * 100_000          # CPython's json raises RecursionError long before this depth


@pytest.mark.parametrize("method,path", [("POST", "/v1/edge/reports"), ("PATCH", "/v1/tenant"),
                                         ("POST", "/v1/devices")])
async def test_deeply_nested_json_body_is_400_not_500(client, clock, method, path):
    # found by the http target: request.json() raised RecursionError, the error middleware made it a 500
    t = AdminTenant(client.app, "tenant-a", clock)
    r = await client.request(method, path, data=DEEP, headers=dict(t.headers, **{"Content-Type": "application/json"}))
    assert r.status == 400
    assert (await r.json())["error"] == "invalid_request"


def test_deeply_nested_signed_manifest_is_rejected_not_a_crash(tmp_path):
    # found by the ota target (manifests are signed by the harness): json.loads raised RecursionError
    st = SQLiteStorage(str(tmp_path / "janua.db"))
    tenant = registry.create_tenant(st, "acme", T0)
    signer = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    pub = signer.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    kid = ota.add_key(st, tenant["id"], {"pub": pub.hex()}, T0, "test")["kid"]
    manifest = b"[" * 16000
    sig = json.dumps({"alg": "Ed25519", "kid": kid,
                      "sig": signer.sign(ota.CONTEXT + hashlib.sha256(manifest).digest()).hex()}).encode()
    with pytest.raises(ota.ReleaseRejected, match="^manifest.json is not JSON$"):
        ota.verify_bundle_signature(st, tenant["id"], manifest, sig)
    st.close()


def test_hello_with_the_last_message_seq_is_refused_not_a_crash(tmp_path):
    # found by the dtls target: a cookie-verified ClientHello with message_seq 65535 made the server
    # number its ServerHelloDone 65536 (struct.error out of receive(), a traceback per datagram)
    from tests.dtls_verifier.rawclient import client_hello
    from verifier.dtls import DTLSServer
    from verifier.dtls import wire

    srv = DTLSServer(lambda identity, addr, now: None, T0, rand=lambda n: bytes(n))
    addr, rnd = ("192.0.2.1", 5684), bytes(range(32))
    (hvr,) = srv.receive(client_hello(rnd, msg_seq=0xFFFF), addr, T0)[0]
    cookie = wire.decode_handshakes(wire.decode_records(hvr)[0].fragment)[0].body[3:]
    replies, events = srv.receive(client_hello(rnd, cookie, msg_seq=0xFFFF, rec_seq=1), addr, T0)
    assert replies == [bytes.fromhex("15fefd00000000000000010002022f")]   # fatal alert 47, illegal_parameter
    assert srv.half_open_count == 0
    # 65533 still leaves room (ServerHello 65533, ServerHelloDone 65534, Finished 65535)
    replies, events = srv.receive(client_hello(rnd, cookie, msg_seq=0xFFFD, rec_seq=2), addr, T0)
    assert srv.half_open_count == 1 and len(replies) == 1 and replies[0][0] == 22
