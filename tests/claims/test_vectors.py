"""The claim protocol's vectors (docs/vectors/claim.json), pasted here as literal hex: the claim key, the keys
HKDF derives from it, a request and an answer. Each is checked twice: against hmac/hashlib directly (the spec's
formulas, written out in this file) and against verifier.claims.core, so a change of either the file, the code or
the formulas fails here."""

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from verifier.claims import core

VECTORS = [
    {
        'name': "min-serial",
        'batch_secret': "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        'batch_id': "0011223344556677",
        'serial': "A",
        'nonce': "404142434445464748494a4b4c4d4e4f",
        'K_c': "84d0da6585993b040ae4425a94af6c16c7fec5233a32a3a596cb4f0776416b5d",
        'K_mac': "30f33cce8fd549413c652e314804b1b32ddaf91b6b5772927b9b4d13048906b1",
        'K_enc': "c58474d2bb6afaacbdb91e6d7991798902c6dc2d1be1c58d7363dcee20e76216",
        'request': ("01010011223344556677404142434445464748494a4b4c4d4e4f01418d9b7fce3b095db17a401c9ca7cd0b1e"),
        'server_nonce': "808182838485868788898a8b8c8d8e8f",
        'device_id': "a1a2a3a4a5a6a7a8",
        'master_secret': "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf",
        'config': ("{\"tenant\":\"acme\",\"region\":null,\"server\":{\"host\":\"verifier.example\",\"udp_port\":5684,\"http"
                   "_port\":8443,\"dtls_port\":5685},\"transport\":\"auto\"}"),
        'answer': ("0102a1a2a3a4a5a6a7a8808182838485868788898a8b8c8d8e8fb21281ffe46cacf4a95c42855906d634e124"
                   "ea677f7d778002e83810f990f35400897b2274656e616e74223a2261636d65222c22726567696f6e223a6e75"
                   "6c6c2c22736572766572223a7b22686f7374223a2276657269666965722e6578616d706c65222c227564705f"
                   "706f7274223a353638342c22687474705f706f7274223a383434332c2264746c735f706f7274223a35363835"
                   "7d2c227472616e73706f7274223a226175746f227d18b084cafe6fd376e91eb80654edca80"),
    },
    {
        'name': "typical",
        'batch_secret': "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
        'batch_id': "c1a1b2b3d4e5f607",
        'serial': "SN-2026-000042",
        'nonce': "f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0",
        'K_c': "c695e53b9f06f5b1fcf246f4d0b808b90dfe01c4a088c1ca5230005109cc543c",
        'K_mac': "8a4279854ba7002285d356b2c274917b0acdc7210a926181e4ca72d3941419e3",
        'K_enc': "53ab500ac37730771f83b09ecd76b89c6db635eeccef29646b9ca74dec9930ea",
        'request': ("0101c1a1b2b3d4e5f607f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f00e534e2d323032362d3030303034325d17db"
                    "8d0b7c7dad8e001411f36363c0"),
        'server_nonce': "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f",
        'device_id': "1234567890abcdef",
        'master_secret': "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
        'config': ("{\"tenant\":\"factory-1\",\"region\":\"eu\",\"server\":{\"host\":\"10.0.0.5\",\"udp_port\":5683,\"http_po"
                   "rt\":8080,\"dtls_port\":5684},\"transport\":\"udp\",\"board\":{\"led\":2}}"),
        'answer': ("01021234567890abcdef0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f4d35b43bf258387ee80d0f39caea8cad577a"
                   "374808874ed9a0f89c5302882a7800977b2274656e616e74223a22666163746f72792d31222c22726567696f"
                   "6e223a226575222c22736572766572223a7b22686f7374223a2231302e302e302e35222c227564705f706f72"
                   "74223a353638332c22687474705f706f7274223a383038302c2264746c735f706f7274223a353638347d2c22"
                   "7472616e73706f7274223a22756470222c22626f617264223a7b226c6564223a327d7d829293c608ff6dfc3e"
                   "a809f10df46a57"),
    },
    {
        'name': "max-serial-empty-config",
        'batch_secret': "fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0efeeedecebeae9e8e7e6e5e4e3e2e1e0",
        'batch_id': "ffffffffffffffff",
        'serial': "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ~",
        'nonce': "00000000000000000000000000000000",
        'K_c': "cd61123f8f5fd71a754a0521d13214d4bdadce9c7b363f27b48b9d478e988b26",
        'K_mac': "a007f57b1979ba18a38b3ea1247c2ba5f3e20b33cbfc252c7a8ce1f596f788af",
        'K_enc': "ba140f455e7594d4bc15d2a24f064ca906e7a11e2b863db4e34e2d5b916d25f8",
        'request': ("0101ffffffffffffffff00000000000000000000000000000000405a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"
                    "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"
                    "5a5a7e21b0fdfd51a5f24a584b33917f91bbd9"),
        'server_nonce': "01010101010101010101010101010101",
        'device_id': "0000000000000001",
        'master_secret': "0000000000000000000000000000000000000000000000000000000000000000",
        'config': "",
        'answer': ("01020000000000000001010101010101010101010101010101011e7e9a7c7939fbcd47261f58e79bbc496d0b"
                   "286eb44d6dc506c5e23172de8cea0000ce17559d51112e341b56e0b627f93753"),
    },
]


def _hkdf(ikm, info):
    prk = hmac.new(b"janua/v1", ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def test_the_file_holds_these_vectors():
    doc = json.loads((Path(__file__).parents[2] / "docs/vectors/claim.json").read_text())
    assert doc["vectors"] == VECTORS


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["name"])
def test_keys_follow_the_spec_formulas(v):
    bs, serial = bytes.fromhex(v["batch_secret"]), v["serial"].encode()
    k_c = hmac.new(bs, b"janua-claim-v1\x00" + serial, hashlib.sha256).digest()
    assert k_c.hex() == v["K_c"]
    assert _hkdf(k_c, b"claim-mac").hex() == v["K_mac"]
    assert _hkdf(k_c, b"claim-enc").hex() == v["K_enc"]
    assert core.claim_key(bs, v["serial"]).hex() == v["K_c"]
    assert [k.hex() for k in core.claim_keys(k_c)] == [v["K_mac"], v["K_enc"]]


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["name"])
def test_request_layout_and_tag(v):
    req = bytes.fromhex(v["request"])
    serial = v["serial"].encode()
    assert len(req) == 43 + len(serial)
    assert req[:2] == b"\x01\x01"
    assert req[2:10].hex() == v["batch_id"] and req[10:26].hex() == v["nonce"]
    assert req[26] == len(serial) and req[27:27 + len(serial)] == serial
    mac = hmac.new(bytes.fromhex(v["K_mac"]), req[:27 + len(serial)], hashlib.sha256).digest()[:16]
    assert req[-16:] == mac
    k_c = bytes.fromhex(v["K_c"])
    assert core.encode_request(k_c, bytes.fromhex(v["batch_id"]), bytes.fromhex(v["nonce"]), v["serial"]) == req
    parsed = core.decode_request_unverified(req)
    assert (parsed.batch_id.hex(), parsed.nonce.hex(), parsed.serial) == (v["batch_id"], v["nonce"], v["serial"])
    core.verify_request(parsed, bytes.fromhex(v["K_mac"]))


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["name"])
def test_answer_layout_tag_and_secret(v):
    ans = bytes.fromhex(v["answer"])
    config = v["config"].encode()
    nonce, snonce, did = bytes.fromhex(v["nonce"]), bytes.fromhex(v["server_nonce"]), bytes.fromhex(v["device_id"])
    assert len(ans) == 76 + len(config)
    assert ans[:2] == b"\x01\x02" and ans[2:10] == did and ans[10:26] == snonce
    assert int.from_bytes(ans[58:60], "big") == len(config) and ans[60:60 + len(config)] == config
    tag = hmac.new(bytes.fromhex(v["K_mac"]), nonce + ans[:60 + len(config)], hashlib.sha256).digest()[:16]
    assert ans[-16:] == tag
    ks = hmac.new(bytes.fromhex(v["K_enc"]), nonce + snonce + did, hashlib.sha256).digest()
    assert bytes(a ^ b for a, b in zip(ans[26:58], ks)).hex() == v["master_secret"]
    k_c = bytes.fromhex(v["K_c"])
    assert core.encode_answer(k_c, nonce, did, snonce, bytes.fromhex(v["master_secret"]), config) == ans
    got = core.decode_answer(k_c, nonce, ans)
    assert (got[0].hex(), got[1].hex()) == (v["device_id"], v["master_secret"])


def _tagged_answer(v, config):
    """The vector's answer with another config, tagged as the verifier would (hmac written out here)."""
    head = bytes.fromhex(v["answer"])[:58] + len(config).to_bytes(2, "big") + config
    nonce = bytes.fromhex(v["nonce"])
    return head + hmac.new(bytes.fromhex(v["K_mac"]), nonce + head, hashlib.sha256).digest()[:16]


@pytest.mark.parametrize("config", [b"[" * 1000 + b"]" * 24, b"\xff\xfe", b"[1, 2]", b'"text"'],
                         ids=["nested-1000", "not-utf8", "array", "string"])
def test_an_authentic_answer_whose_config_is_not_a_json_object_is_a_value_error(config):
    v = VECTORS[1]
    with pytest.raises(ValueError):
        core.decode_answer(bytes.fromhex(v["K_c"]), bytes.fromhex(v["nonce"]), _tagged_answer(v, config))


@pytest.mark.parametrize("where", [0, 1, 2, 26, 58, 60, -1])
def test_a_changed_answer_byte_fails_the_boards_check(where):
    v = VECTORS[1]
    ans = bytearray(bytes.fromhex(v["answer"]))
    ans[where] ^= 0x01
    with pytest.raises(ValueError):
        core.decode_answer(bytes.fromhex(v["K_c"]), bytes.fromhex(v["nonce"]), bytes(ans))
