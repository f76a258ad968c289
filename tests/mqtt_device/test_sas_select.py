"""Credentials the board computes (janua.sas: mqtt-sas tokens, http-basic) checked against a CPython
computation of the same formula and against the verifier's own checks; and the constrained
selector (janua.select) over capability sets, all on the MicroPython unix port with the esp32 heap
(no hmac module there)."""

import base64
import hashlib
import hmac
import json

import pytest

from tests.mqtt_device.conftest import put_board
from verifier import keys
from verifier.mqtt import core as ma
from verifier.mqtt import broker as mb

TENANT_ID = "3f1c2a9e-acme"
DEVICES = ["0123456789abcdef", "fedcba9876543210"]
MASTERS = [bytes(32), bytes(range(32)), hashlib.sha256(b"janua sas vector").digest()]
EXPIRIES = [1, 1_767_225_600, 2**31 + 7, 99_999_999_999]


def cpython_sas(master, resource, expiry):
    """The formula of docs/mqtt.md written out with the standard library only."""
    prk = hmac.digest(b"janua/v1", master, "sha256")
    key = hmac.digest(prk, b"mqtt-sas" + b"\x01", "sha256")
    sig = hmac.digest(key, f"{resource}\n{expiry}".encode(), "sha256")
    b64 = base64.urlsafe_b64encode(sig).rstrip(b"=").decode()
    return f"SharedAccessSignature sr={resource}&sig={b64}&se={expiry}"


def _vectors():
    out = []
    for m in MASTERS:
        for d in DEVICES:
            for e in EXPIRIES:
                out.append({"master": m.hex(), "resource": ma.sas_resource(TENANT_ID, d), "expiry": e, "device": d})
    return out


@pytest.fixture(scope="module")
def board_tokens(tmp_path_factory):
    from tools.boards import MPRun
    mp = MPRun(tmp_path_factory.mktemp("sas"))
    vecs = _vectors()
    out = mp("""
import json
from binascii import unhexlify
from janua import sas
for v in json.loads(%r):
    m = unhexlify(v["master"])
    print(json.dumps({"sas": sas.sas_token(m, v["resource"], v["expiry"]),
                      "basic": sas.basic_authorization(m, v["device"])}))
""" % json.dumps(vecs))
    return list(zip(vecs, out))


def test_board_sas_tokens_match_the_cpython_formula_and_the_verifier(board_tokens):
    assert len(board_tokens) == len(MASTERS) * len(DEVICES) * len(EXPIRIES)
    for v, got in board_tokens:
        m = bytes.fromhex(v["master"])
        assert got["sas"] == cpython_sas(m, v["resource"], v["expiry"]), v
        assert got["sas"] == ma.encode_sas(keys.derive_key(m, b"mqtt-sas"), v["resource"], v["expiry"])
    # another key, resource or expiry never gives the same signature
    sigs = [got["sas"].split("&sig=")[1].split("&")[0] for _, got in board_tokens]
    assert len(set(sigs)) == len(sigs)


def test_board_http_basic_matches_the_cpython_formula_and_the_verifier_parser(board_tokens):
    for v, got in board_tokens:
        m = bytes.fromhex(v["master"])
        secret = keys.derive_key(m, b"http-basic").hex()
        assert got["basic"] == "Basic " + base64.b64encode(f"{v['device']}:{secret}".encode()).decode()
        assert ma.parse_basic_unverified(got["basic"]) == (v["device"], ma.basic_secret(m))


@pytest.mark.parametrize("change", ["expiry_moved", "other_master", "other_resource"])
def test_a_changed_input_gives_a_token_the_verifier_refuses(board_tokens, change):
    """A token is bound to its expiry, its key and its resource: re-labelling any of them fails the MAC."""
    v, got = board_tokens[5]
    m = bytes.fromhex(v["master"])
    key = keys.derive_key(m, b"mqtt-sas")
    res, exp = v["resource"], v["expiry"]
    token = got["sas"]
    if change == "expiry_moved":
        token = token.replace(f"se={exp}", f"se={exp + 3600}")
    elif change == "other_master":
        key = keys.derive_key(bytes(a ^ 1 for a in m), b"mqtt-sas")
    else:
        res = ma.sas_resource(TENANT_ID, "00000000000000ff")
    with pytest.raises(ma.Refused) as e:
        ma.verify_sas(token, key, res, now=exp - 10, drift_s=0)
    assert e.value.reason == "bad_mac"
    ma.verify_sas(got["sas"], keys.derive_key(m, b"mqtt-sas"), v["resource"], now=v["expiry"] - 10, drift_s=0)


def test_board_mqtt_sas_login_is_accepted_by_the_verifier_and_expires(tmp_path):
    """janua.sas.mqtt_sas(cfg, now): client id and user name = device id, resource from the topic
    prefix the board was provisioned with; the verifier accepts it until expiry (+ drift) only."""
    from tools.boards import MPRun
    mp = MPRun(tmp_path)
    dev = {"id": DEVICES[0], "master": MASTERS[2].hex(), "tenant": "acme", "port": 8883,
           "prefix": mb.topic_prefix(TENANT_ID, DEVICES[0])}
    put_board(mp.flash, dev, umqtt=None, files=False)
    now = 1_767_225_600
    out = mp("""
import json
from janua.store import Store
from janua import sas
cid, user, pw = sas.mqtt_sas(Store().load_config(), %d, 600)
print(json.dumps([cid, user, pw]))
""" % now)
    cid, user, pw = out[0]
    assert cid == user == DEVICES[0]
    key = keys.derive_key(MASTERS[2], b"mqtt-sas")
    res = ma.sas_resource(TENANT_ID, DEVICES[0])
    ma.verify_sas(pw, key, res, now=now + 600, drift_s=0)
    with pytest.raises(ma.Refused):
        ma.verify_sas(pw, key, res, now=now + 601, drift_s=0)


# ---------------------------------------------------------------- the selector

FULL = {"tls": True, "dtls": ["PROTOCOL_DTLS_CLIENT", "PROTOCOL_DTLS_SERVER"],
        "tls_psk": ["psk_identity", "psk_key"], "hashlib": ["sha1", "sha256"], "cryptolib": ["ECB", "CBC"],
        "mem_free": 90000, "umqtt": True}


def _caps(**over):
    c = dict(FULL)
    c.update(over)
    return c


SELECTOR_CASES = [
    # (id, caps, links, want, expected)
    ("dtls_native_and_udp", FULL, ["udp", "tcp"], None, "coap-psk"),
    ("dtls_lite_only", _caps(dtls=[], tls_psk=[]), ["udp", "tcp"], None, "coap-psk"),
    ("no_dtls_no_aes", _caps(dtls=[], tls_psk=[], cryptolib=[]), ["udp", "tcp"], None, "custom-binary"),
    ("heap_too_small_for_dtls", _caps(mem_free=9000), ["udp"], None, "custom-binary"),
    ("smallest_wanted", FULL, ["udp", "tcp"], "smallest", "custom-binary"),
    ("mqtt_wanted", FULL, ["udp", "tcp"], "mqtt", "mqtt-sas"),
    ("mqtt_wanted_no_umqtt", _caps(umqtt=False), ["udp", "tcp"], "mqtt", "coap-psk"),
    ("mqtt_wanted_no_tls", _caps(tls=False, dtls=[], tls_psk=[]), ["tcp"], "mqtt", "http-basic"),
    ("mqtt_wanted_udp_only", FULL, ["udp"], "mqtt", "coap-psk"),
    ("http_only_network", FULL, ["tcp"], None, "http-basic"),
    ("session_wanted", _caps(dtls=[]), ["udp"], "session", "coap-psk"),
]
SELECTOR_ERRORS = [
    ("session_without_dtls", _caps(dtls=[], cryptolib=[]), ["udp", "tcp"], "session"),
    ("no_links", FULL, [], None),
    ("no_sha256", _caps(hashlib=["md5"], dtls=[], tls_psk=[]), ["udp", "tcp"], None),
]


def test_selector_picks_per_capability_set(mp_board):
    cases = [[c[1], c[2], c[3]] for c in SELECTOR_CASES] + [[c[1], c[2], c[3]] for c in SELECTOR_ERRORS]
    out = mp_board("""
import json
from janua import JanuaError
from janua.select import select_protocol
for caps, links, want in json.loads(%r):
    try:
        print(json.dumps(select_protocol(caps, tuple(links), want)))
    except JanuaError as e:
        print(json.dumps({"error": str(e)}))
""" % json.dumps(cases))
    got = dict(zip([c[0] for c in SELECTOR_CASES + SELECTOR_ERRORS], out))
    want = {c[0]: c[4] for c in SELECTOR_CASES}
    assert {k: got[k] for k in want} == want
    for c in SELECTOR_ERRORS:
        assert isinstance(got[c[0]], dict) and got[c[0]]["error"], c[0]


@pytest.mark.parametrize("umqtt,want,expected", [(True, "mqtt", "mqtt-sas"), (False, "mqtt", "coap-psk"),
                                                 (True, None, "coap-psk")])
def test_selector_on_this_boards_own_probe(tmp_path, umqtt, want, expected):
    """janua.probe() on the esp32-profile unix port (tls with DTLS and PSK), umqtt.simple installed or not."""
    from tools.boards import MPRun
    mp = MPRun(tmp_path)
    dev = {"id": DEVICES[0], "master": MASTERS[0].hex(), "tenant": "acme", "port": 8883,
           "prefix": mb.topic_prefix(TENANT_ID, DEVICES[0])}
    put_board(mp.flash, dev, umqtt="1.3.4" if umqtt else None, files=False)
    out = mp("""
import json, janua
from janua.select import with_umqtt
caps = with_umqtt(janua.probe())
print(json.dumps([caps["umqtt"], janua.select_protocol(caps, ("udp", "tcp"), %r)]))
""" % (want,))
    assert out == [[umqtt, expected]]


@pytest.fixture
def mp_board(tmp_path):
    from tools.boards import MPRun
    return MPRun(tmp_path)
