"""Regression tests for verifier crashes the host fuzz targets found (fuzz/targets/): each input is
the one that crashed, or its shape, and the expected answer is the documented refusal."""

import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.support import T0, AdminTenant, clock, client, config  # noqa: F401 (fixtures)
from verifier import ota, registry
from verifier.storage import SQLiteStorage

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
