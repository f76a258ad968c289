"""Key derivation and binary auth MACs against docs/vectors/binauth.json (docs/protocol.md 1, 3)."""

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from verifier import keys
from verifier.binauth.core import OK, decode_reply, encode_reply, encode_request, unauthenticated_reply

V = json.loads((Path(__file__).parents[2] / "docs" / "vectors" / "binauth.json").read_text())
M = bytes.fromhex(V["master_secret"])
K = keys.derive_key(M, b"binauth")


def test_hkdf_rfc5869_case1():
    c = V["hkdf_rfc5869_case1"]
    okm = keys.hkdf_sha256(bytes.fromhex(c["ikm"]), bytes.fromhex(c["salt"]), bytes.fromhex(c["info"]), c["L"])
    assert okm.hex() == c["okm"]


def test_hmac_rfc4231_case2():
    c = V["hmac_sha256_rfc4231_case2"]
    assert hmac.digest(bytes.fromhex(c["key"]), bytes.fromhex(c["data"]), "sha256").hex() == c["mac"]


@pytest.mark.parametrize("label", sorted(V["derived_keys"]))
def test_derived_keys(label):
    assert keys.derive_key(M, label.encode()).hex() == V["derived_keys"][label]


def test_unknown_label_refused():
    with pytest.raises(keys.CryptoError):
        keys.derive_key(M, b"other")


@pytest.mark.parametrize("vec", V["requests"], ids=lambda v: str(v["timestamp"]))
def test_request_vectors(vec):
    assert encode_request(K, bytes.fromhex(vec["device_id"]), vec["timestamp"]).hex() == vec["request"]


@pytest.mark.parametrize("vec", V["replies"], ids=lambda v: v["name"])
def test_reply_vectors(vec):
    req, reply = bytes.fromhex(vec["request"]), bytes.fromhex(vec["reply"])
    out = decode_reply(K, req, reply)
    assert out["status"] == vec["status"]
    if vec.get("reject"):
        assert not out["authenticated"]
        return
    if not vec["authenticated"]:
        assert reply == unauthenticated_reply(vec["status"])
        return
    assert out["authenticated"] and out["server_time"] == vec["server_time"]
    if vec["status"] == OK:
        again = encode_reply(K, req, OK, vec["server_time"], vec["session_id"], vec["expiry"], vec["permissions"])
    else:
        again = encode_reply(K, req, vec["status"], vec["server_time"])
    assert again == reply


def test_sealed_secret_bound_to_device_and_tenant():
    s = keys.Sealer(bytes(32))
    sealed = s.seal(M, b"\x01" * 8, "t1")
    assert s.unseal(sealed, b"\x01" * 8, "t1") == M
    for did, tid in ((b"\x02" * 8, "t1"), (b"\x01" * 8, "t2")):
        with pytest.raises(keys.CryptoError):
            s.unseal(sealed, did, tid)
    with pytest.raises(keys.CryptoError):
        keys.Sealer(bytes(range(32))).unseal(sealed, b"\x01" * 8, "t1")


def test_token_stored_as_hash():
    t = keys.new_token()
    assert t.startswith("jna_") and len(t) == 4 + 43
    assert keys.hash_token(t) == hashlib.sha256(t.encode()).digest()
