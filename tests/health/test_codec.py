"""The report codec against docs/vectors/health.json (literal vectors) and the piggy-back tag."""

import hashlib
import hmac
import json
import pathlib

import pytest

from verifier import keys
from verifier.health.core import Refused, check_piggyback, decode, encode

VEC = json.loads((pathlib.Path(__file__).parents[2] / "docs/vectors/health.json").read_text())


@pytest.mark.parametrize("vec", VEC["reports"], ids=lambda v: v["name"])
def test_reports_decode_and_encode(vec):
    assert decode(bytes.fromhex(vec["report"])) == vec["fields"]
    assert encode(vec["fields"]).hex() == vec["report"]


@pytest.mark.parametrize("vec", VEC["refused"], ids=lambda v: v["reason"] + ":" + v["report"][:16])
def test_refused(vec):
    with pytest.raises(Refused) as e:
        decode(bytes.fromhex(vec["report"]))
    assert e.value.reason == vec["reason"]


@pytest.mark.parametrize("vec", VEC["accepted_edge"], ids=lambda v: v["report"])
def test_accepted_edge(vec):
    assert decode(bytes.fromhex(vec["report"])) == vec["fields"]


def test_k_health_label():
    assert keys.derive_key(bytes.fromhex(VEC["master_secret"]), b"health").hex() == VEC["K_health"]


def test_piggyback_vector_and_bad_tag():
    dg = bytes.fromhex(VEC["piggyback"]["datagram"])
    k = bytes.fromhex(VEC["K_health"])
    assert check_piggyback(k, dg[:20], dg[20:])["app_version"] == "1.4.2"
    # the tag computed here literally: HMAC-SHA256(K_health, request || report)[:8]
    assert hmac.new(k, dg[:-8], hashlib.sha256).digest()[:8] == dg[-8:]
    bad = dg[:-1] + bytes((dg[-1] ^ 1,))
    with pytest.raises(Refused) as e:
        check_piggyback(k, bad[:20], bad[20:])
    assert e.value.reason == "tag"
    # a report moved onto another request fails its tag
    other = bytes(8) + dg[8:20]
    with pytest.raises(Refused) as e:
        check_piggyback(k, other, dg[20:])
    assert e.value.reason == "tag"
