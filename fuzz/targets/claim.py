"""Claim requests and answers (verifier/claims/core.py, docs/claims.md 2 and 3). An input is decoded as a request as
sent (the board's bytes of POST /v1/claim), and again with its tag recomputed under the first vector's K_mac so that
mutated framing and serials get past the tag; and as an answer to the vector's request (decode_answer, the board's
check), as sent and re-tagged. Documented errors: MalformedClaim and ClaimInvalid for requests, ValueError for
answers. Checks: an accepted request is 44-107 bytes with a printable serial and encodes back to the same bytes; an
accepted answer is 76-1100 bytes with a JSON object (or no) config and encodes back to the same bytes."""

import hashlib
import hmac
import json
from pathlib import Path

from fuzz.harness import check
from verifier.claims import core

ALLOWED = (core.MalformedClaim, core.ClaimInvalid, ValueError)
VECTORS = json.loads((Path(__file__).resolve().parents[2] / "docs" / "vectors" / "claim.json").read_text())["vectors"]
V = VECTORS[1]
K_C, K_MAC = bytes.fromhex(V["K_c"]), bytes.fromhex(V["K_mac"])
NONCE = bytes.fromhex(V["nonce"])


def _request(data):
    try:
        req = core.decode_request_unverified(data)
    except core.MalformedClaim:
        return None
    check(core.REQUEST_MIN <= len(data) <= core.REQUEST_MAX, "accepted a request of the wrong length")
    check(all(0x21 <= c <= 0x7E for c in req.serial.encode()), "accepted a serial outside 0x21..0x7e")
    try:
        core.verify_request(req, K_MAC)
    except core.ClaimInvalid:
        return req
    check(core.encode_request(K_C, req.batch_id, req.nonce, req.serial) == data, "request does not re-encode")
    return req


def _answer(data):
    try:
        did, secret, config = core.decode_answer(K_C, NONCE, data)
    except ValueError:
        return
    check(core.ANSWER_MIN <= len(data) <= core.ANSWER_MIN + core.CONFIG_MAX, "accepted an answer of the wrong length")
    check(config is None or isinstance(config, dict), "config is not an object")
    raw = data[60:-16]
    check(core.encode_answer(K_C, NONCE, did, data[10:26], secret, raw) == data, "answer does not re-encode")


def _retag_request(data):
    if len(data) < 17:
        return data
    body = data[:-16]
    return body + hmac.new(K_MAC, body, hashlib.sha256).digest()[:16]


def _retag_answer(data):
    if len(data) < 17:
        return data
    body = data[:-16]
    return body + hmac.new(K_MAC, NONCE + body, hashlib.sha256).digest()[:16]


def make(workdir):
    def one_input(data):
        _request(data)
        _request(_retag_request(data))
        _answer(data)
        _answer(_retag_answer(data))

    return one_input


def seeds(workdir):
    out = []
    for v in VECTORS:
        out += [bytes.fromhex(v["request"]), bytes.fromhex(v["answer"])]
    out.append(bytes.fromhex(V["answer"])[:60] + b"[" * 40 + bytes(16))
    return out
