"""HMAC, ct_eq, HKDF, derived keys and the binauth codec against docs/vectors/binauth.json,
on MicroPython with the esp32 heap, and (the pure codec) under CPython too."""

import json
import subprocess
import sys

import pytest

from tests.firmware.conftest import VECTORS
from tools.boards import FIRMWARE_DIR

PRELUDE = """
import json
from binascii import hexlify, unhexlify as u
from janua.mac import HMAC, hmac_sha256, ct_eq
from janua import hkdf, PacketError
from janua.packet import encode_request, decode_reply
V = json.loads(%r)
def h(b): return hexlify(b).decode()
""" % json.dumps(VECTORS)


def test_hmac_rfc4231_case2_and_long_key(mp):
    out = mp(PRELUDE + """
c = V["hmac_sha256_rfc4231_case2"]
print(json.dumps([h(hmac_sha256(u(c["key"]), u(c["data"]))),
                  h(HMAC(b"k" * 100).digest(b"abc")), h(HMAC(b"k").digest(b"a", b"bc"))]))
""")[0]
    import hashlib
    import hmac
    assert out[0] == VECTORS["hmac_sha256_rfc4231_case2"]["mac"]
    assert out[1] == hmac.new(b"k" * 100, b"abc", hashlib.sha256).hexdigest()
    assert out[2] == hmac.new(b"k", b"abc", hashlib.sha256).hexdigest()


def test_hkdf_rfc5869_case1_and_derived_keys(mp):
    out = mp(PRELUDE + """
c = V["hkdf_rfc5869_case1"]
okm = hkdf.expand(hkdf.extract(u(c["salt"]), u(c["ikm"])), u(c["info"]), c["L"])
keys = {k: h(hkdf.derive(u(V["master_secret"]), k)) for k in V["derived_keys"]}
print(json.dumps({"okm": h(okm), "keys": keys}))
""")[0]
    assert out["okm"] == VECTORS["hkdf_rfc5869_case1"]["okm"]
    assert out["keys"] == VECTORS["derived_keys"]


CT_CASES = [("", ""), ("a", "a"), ("abc", "abd"), ("abc", "ab"), ("x" * 32, "x" * 31 + "y"),
            ("\x00", "\x80")]


def test_ct_eq_matches_equality(mp):
    out = mp(PRELUDE + """
cases = %r
print(json.dumps([ct_eq(a.encode(), b.encode()) for a, b in cases]))
""" % CT_CASES)[0]
    assert out == [a == b for a, b in CT_CASES]


def test_requests_match_vectors(mp):
    out = mp(PRELUDE + """
k = HMAC(u(V["derived_keys"]["binauth"]))
buf = bytearray(20)
print(json.dumps([[h(encode_request(u(r["device_id"]), r["timestamp"], k)),
                   h(encode_request(u(r["device_id"]), r["timestamp"], k, buf))]
                  for r in V["requests"]]))
""")[0]
    assert out == [[r["request"]] * 2 for r in VECTORS["requests"]]


def test_bad_request_inputs_rejected(mp):
    out = mp(PRELUDE + """
k = HMAC(u(V["derived_keys"]["binauth"]))
res = []
for dev, ts in ((b"1234567", 1), (b"123456789", 1), (b"12345678", -1), (b"12345678", 1 << 32)):
    try:
        encode_request(dev, ts, k); res.append("accepted")
    except PacketError:
        res.append("rejected")
print(json.dumps(res))
""")[0]
    assert out == ["rejected"] * 4


REPLY_SCRIPT = PRELUDE + """
k = HMAC(u(V["derived_keys"]["binauth"]))
res = []
for c in V["replies"] + EXTRA:
    try:
        r = decode_reply(u(c["request"]), u(c["reply"]), k)
        res.append({"status": r[0], "server_time": r[1], "session_id": r[2], "expiry": r[3],
                    "permissions": r[4], "authenticated": r[5]})
    except PacketError as e:
        res.append({"reject": True})
print(json.dumps(res))
"""

REQ = VECTORS["replies"][0]["request"]
OK_REPLY = VECTORS["replies"][0]["reply"]
# Malformed or spoofed replies beyond the shared vectors; each must raise PacketError.
NEGATIVE = {
    "test_truncated_ok_reply_rejected": OK_REPLY[:-2],
    "test_overlong_reply_rejected": OK_REPLY + "00",
    "test_empty_reply_rejected": "",
    "test_ok_status_in_short_reply_rejected": "00" + "00" * 12,
    "test_unknown_status_rejected": "09" + "00" * 12,
    "test_unauthenticated_reply_with_time_rejected": "03" + "00000001" + "00" * 8,
    "test_unauthenticated_reply_with_nonzero_tag_rejected": "03" + "00" * 11 + "01",
    "test_spoofed_time_sync_with_zero_tag_rejected": "01" + "6955ca30" + "00" * 8,
    "test_spoofed_replay_rejected": "05" + "6955b964" + "00" * 7 + "01",
    "test_spoofed_not_active_rejected": "04" + "00" * 12,
}


@pytest.fixture(scope="module")
def decoded(tmp_path_factory):
    from tests.firmware.conftest import MPRun
    run = MPRun(tmp_path_factory.mktemp("codec"))
    extra = [{"request": REQ, "reply": r} for r in NEGATIVE.values()]
    return run(REPLY_SCRIPT.replace("EXTRA", json.dumps(extra)))[0]


@pytest.mark.parametrize("i", range(len(VECTORS["replies"])),
                         ids=[c["name"] for c in VECTORS["replies"]])
def test_reply_vectors(decoded, i):
    c = VECTORS["replies"][i]
    got = decoded[i]
    if c.get("reject"):  # spoofed OK, reply bound to another request
        assert got == {"reject": True}
        return
    for key in ("status", "server_time", "authenticated", "session_id", "expiry", "permissions"):
        if key in c:
            assert got[key] == c[key], key


@pytest.mark.parametrize("name", list(NEGATIVE))
def test_malformed_or_spoofed_reply_rejected(decoded, name):
    assert decoded[len(VECTORS["replies"]) + list(NEGATIVE).index(name)] == {"reject": True}


def test_reply_bound_to_other_request_rejected(mp):
    ok = VECTORS["replies"][0]
    other = VECTORS["requests"][1]["request"]
    out = mp(PRELUDE + """
k = HMAC(u(V["derived_keys"]["binauth"]))
try:
    decode_reply(u(%r), u(%r), k); print(json.dumps("accepted"))
except PacketError:
    print(json.dumps("rejected"))
""" % (other, ok["reply"]))[0]
    assert out == "rejected"


def test_codec_under_cpython_matches_vectors():
    code = """
import json, sys
from janua.mac import HMAC
from janua.packet import encode_request, decode_reply
from janua import PacketError
V = json.load(open(sys.argv[1]))
k = HMAC(bytes.fromhex(V["derived_keys"]["binauth"]))
for r in V["requests"]:
    assert encode_request(bytes.fromhex(r["device_id"]), r["timestamp"], k).hex() == r["request"]
for c in V["replies"]:
    try:
        r = decode_reply(bytes.fromhex(c["request"]), bytes.fromhex(c["reply"]), k)
    except PacketError:
        assert c.get("reject"), c["name"]
        continue
    assert not c.get("reject") and r[0] == c["status"] and r[5] == c["authenticated"], c["name"]
print("ok")
"""
    vec = FIRMWARE_DIR.parent / "docs" / "vectors" / "binauth.json"
    p = subprocess.run([sys.executable, "-c", code, str(vec)], cwd=FIRMWARE_DIR,
                       capture_output=True, text=True, timeout=60)
    assert p.stdout.strip() == "ok", p.stderr
