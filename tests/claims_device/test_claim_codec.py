"""janua.claim's codec against docs/vectors/claim.json (literal hex from the file), on MicroPython with the
esp32 heap and under CPython; every malformed answer refused before anything in it is used."""

import json
import subprocess
import sys

import pytest

from tests.claims_device.conftest import TYPICAL, VECTORS, answer
from tools.boards import FIRMWARE_DIR

# Literal expectations for the "typical" vector (docs/vectors/claim.json), pasted here.
TYPICAL_DEVICE = "1234567890abcdef"
TYPICAL_SECRET = "ee" * 32
TYPICAL_REQUEST = ("0101c1a1b2b3d4e5f607f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f00e534e2d323032362d3030303034325d17db8d0b"
                   "7c7dad8e001411f36363c0")

CODEC = """
import json, sys
from binascii import hexlify, unhexlify as u
from janua.claim import request, open_answer
from janua import ClaimError, JanuaError
V = json.loads(%r)
out = []
for v in V["vectors"]:
    c = {"batch": v["batch_id"], "serial": v["serial"], "key": v["K_c"]}
    req = hexlify(request(c, u(v["nonce"]))).decode()
    try:
        got = list(open_answer(u(v["K_c"]), u(v["nonce"]), u(v["answer"])))
    except ClaimError as e:
        got = "ClaimError: %%s" %% e
    out.append([v["name"], req, got])
print(json.dumps(out))
"""


def _check_codec(out):
    by = {name: (req, got) for name, req, got in out}
    assert by["typical"][0] == TYPICAL_REQUEST
    assert by["typical"][1] == [TYPICAL_DEVICE, TYPICAL_SECRET, {
        "tenant": "factory-1", "region": "eu", "transport": "udp", "board": {"led": 2},
        "server": {"host": "10.0.0.5", "udp_port": 5683, "http_port": 8080, "dtls_port": 5684}}]
    assert by["min-serial"][0] == ("01010011223344556677404142434445464748494a4b4c4d4e4f01418d9b7fce3b095db17a401c"
                                   "9ca7cd0b1e")
    assert by["min-serial"][1][:2] == ["a1a2a3a4a5a6a7a8",
                                       "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"]
    assert by["max-serial-empty-config"][0].endswith("7e21b0fdfd51a5f24a584b33917f91bbd9")
    # an empty config verifies (it is the tag's vector) but is no configuration a board can use
    assert by["max-serial-empty-config"][1] == "ClaimError: answer config is not a JSON object"
    for v in VECTORS["vectors"]:
        assert by[v["name"]][0] == v["request"]


def test_codec_on_micropython_matches_vectors(mp):
    _check_codec(mp(CODEC % json.dumps(VECTORS))[0])


def test_codec_under_cpython_matches_vectors(tmp_path):
    script = tmp_path / "codec.py"
    script.write_text(CODEC % json.dumps(VECTORS))
    p = subprocess.run([sys.executable, str(script)], cwd=FIRMWARE_DIR, capture_output=True, text=True,
                       timeout=60, env={"PYTHONPATH": str(FIRMWARE_DIR)})
    assert p.returncode == 0, p.stderr
    _check_codec(json.loads(p.stdout))


K_C = bytes.fromhex(TYPICAL["K_c"])
NONCE = bytes.fromhex(TYPICAL["nonce"])
GOOD = bytes.fromhex(TYPICAL["answer"])
CFG = TYPICAL["config"].encode()
DEV = bytes.fromhex(TYPICAL["device_id"])
SN = bytes.fromhex(TYPICAL["server_nonce"])
MS = bytes.fromhex(TYPICAL["master_secret"])


def _flip(b, i):
    b = bytearray(b)
    b[i] ^= 1
    return bytes(b)


# name -> (answer bytes, the ClaimError message the board gives). Each names what it prevents.
MALFORMED = {
    "empty": (b"", "answer length 0"),
    "truncated_tag": (GOOD[:-1], "answer length %d" % (len(GOOD) - 1)),
    "truncated_to_header": (GOOD[:60], "answer length 60"),
    "extra_byte": (GOOD + b"\x00", "answer length %d" % (len(GOOD) + 1)),
    "oversize": (answer(K_C, NONCE, DEV, SN, MS, b"{" + b" " * 1023 + b"}"), "answer length 1101"),
    "config_length_over_cap": (GOOD[:58] + b"\x04\x01" + GOOD[60:], "answer length %d" % len(GOOD)),
    "wrong_version": (answer(K_C, NONCE, DEV, SN, MS, CFG, version=2), "answer version/type"),
    "wrong_type_request": (answer(K_C, NONCE, DEV, SN, MS, CFG, kind=1), "answer version/type"),
    "forged_tag": (_flip(GOOD, len(GOOD) - 1), "answer tag does not verify"),
    "flipped_device_id": (_flip(GOOD, 3), "answer tag does not verify"),
    "flipped_secret": (_flip(GOOD, 30), "answer tag does not verify"),
    "flipped_config": (_flip(GOOD, 70), "answer tag does not verify"),
    "replayed_to_another_nonce": (answer(K_C, bytes(16), DEV, SN, MS, CFG), "answer tag does not verify"),
    "other_boards_key": (answer(bytes(32), NONCE, DEV, SN, MS, CFG), "answer tag does not verify"),
    # a forgery whose config is not JSON either: the tag is checked (and refused) before the JSON is parsed
    "forged_tag_before_parse": (answer(bytes(32), NONCE, DEV, SN, MS, b"{tenant"), "answer tag does not verify"),
    "config_not_json": (answer(K_C, NONCE, DEV, SN, MS, b"{tenant"), "answer config is not a JSON object"),
    "config_a_list": (answer(K_C, NONCE, DEV, SN, MS, b"[1,2]"), "answer config is not a JSON object"),
    "config_not_utf8": (answer(K_C, NONCE, DEV, SN, MS, b'{"a":"\xff\xfe"}'), None),
}

REFUSE = """
import json
from binascii import unhexlify as u
from janua.claim import open_answer
from janua import ClaimError
out = {}
for name, a in json.loads(%r).items():
    try:
        open_answer(u(%r), u(%r), u(a))
        out[name] = "accepted"
    except ClaimError as e:
        out[name] = str(e)
print(json.dumps(out))
"""


def test_every_malformed_answer_is_refused_on_micropython(mp):
    cases = {k: a.hex() for k, (a, _) in MALFORMED.items()}
    out = mp(REFUSE % (json.dumps(cases), TYPICAL["K_c"], TYPICAL["nonce"]))[0]
    for name, (_, msg) in MALFORMED.items():
        if msg is None:     # MicroPython's str() does not check UTF-8: either refusal, never a crash
            assert out[name] in ("answer config is not a JSON object", "accepted"), (name, out[name])
        else:
            assert out[name] == msg, name
    assert mp(REFUSE % (json.dumps({"good": GOOD.hex()}), TYPICAL["K_c"], TYPICAL["nonce"]))[0] == {
        "good": "accepted"}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_answer_refused_under_cpython(name):
    sys.path.insert(0, str(FIRMWARE_DIR))
    try:
        from janua import ClaimError
        from janua.claim import open_answer
    finally:
        sys.path.remove(str(FIRMWARE_DIR))
    a, msg = MALFORMED[name]
    with pytest.raises(ClaimError) as e:
        open_answer(K_C, NONCE, a)
    assert str(e.value) == (msg or "answer config is not a JSON object")


REQUEST_BAD = """
import json
from janua.claim import request
from janua import ClaimError
out = []
for c, n in json.loads(%r):
    try:
        request(c, bytes(n)); out.append("built")
    except ClaimError as e:
        out.append(str(e))
print(json.dumps(out))
"""


def test_request_refuses_a_malformed_claim_config(mp):
    k = TYPICAL["K_c"]
    good = {"batch": TYPICAL["batch_id"], "serial": "S", "key": k}
    cases = [[good, 16], [dict(good, serial=""), 16], [dict(good, serial="S" * 65), 16],
             [dict(good, batch="00"), 16], [dict(good, key=k[:62]), 16], [dict(good, key="zz" * 32), 16],
             [{"batch": TYPICAL["batch_id"], "key": k}, 16], [good, 15]]
    out = mp(REQUEST_BAD % json.dumps(cases))[0]
    assert out == ["built"] + ["claim config malformed"] * 7
