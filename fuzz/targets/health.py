"""Health reports (verifier/health/core.py, docs/health.md 1 and 2.1). An input is a report as any transport
delivers it (CoAP payload, MQTT payload, the OTA check's hex, the piggy-back's report part): it is decoded
as sent, and again as a binary-auth piggy-back tagged by the harness with the vectors' K_health, so that the
tag check passes and the same bytes reach decode behind it. The one documented error is Refused, with one
of docs/health.md 1's reasons. An accepted report's fields have the documented types and ranges, it is at
most 128 bytes, the piggy-back gives the same fields, and encode(fields) decodes to the same fields (the
encoding may differ: decode accepts a uvarint with redundant zero groups)."""

import hmac
import json
from pathlib import Path

from fuzz.harness import check
from verifier.health import core

ALLOWED = (core.Refused,)
VECTORS = json.loads((Path(__file__).resolve().parents[2] / "docs" / "vectors" / "health.json").read_text())
K_HEALTH = bytes.fromhex(VECTORS["K_health"])
REQUEST = bytes.fromhex(VECTORS["piggyback"]["request"])
REASONS = {"too_large", "malformed", "version", "reserved_field", "field_too_large", "bad_value", "tag"}
KINDS = dict(core.FIELDS)


def _valid(fields):
    for name, v in fields.items():
        kind = KINDS.get(name)
        check(kind is not None, f"unknown field {name!r}")
        if kind == "s":
            check(type(v) is str and len(v.encode()) <= core.MAX_STRING, f"{name}: not a string of <= 32 bytes")
        else:
            lo, hi = {"u": (0, core.MAX_U32), "u8": (0, 255), "i8": (-128, 127), "z": (-2 ** 31, 2 ** 31 - 1)}[kind]
            check(type(v) is int and lo <= v <= hi, f"{name}: {v!r} out of range")
    if "reset_cause" in fields:
        check(fields["reset_cause"] < len(core.RESET_CAUSES), "reset_cause above 7")


def _decode(report):
    try:
        return core.decode(report)
    except core.Refused as e:
        check(e.reason in REASONS, f"undocumented reason {e.reason!r}")
        raise


def make(workdir):
    def one_input(data):
        tag = hmac.digest(K_HEALTH, REQUEST + data, "sha256")[:core.TAG_LEN]
        try:
            fields = _decode(data)
        except core.Refused as e:
            try:
                core.check_piggyback(K_HEALTH, REQUEST, data + tag)
            except core.Refused as again:
                check(again.reason == e.reason, f"piggy-back refused {again.reason!r}, decode {e.reason!r}")
                return
            check(False, f"piggy-back accepted what decode refused ({e.reason})")
        check(len(data) <= core.MAX_REPORT, "accepted a report over 128 bytes")
        _valid(fields)
        check(core.check_piggyback(K_HEALTH, REQUEST, data + tag) == fields, "piggy-back gave other fields")
        again = core.encode(fields)
        check(len(again) <= len(data), "re-encoding is longer than the report")
        check(core.decode(again) == fields, "decode(encode(fields)) differs")

    return one_input


def seeds(workdir):
    out = [bytes.fromhex(r["report"]) for r in VECTORS["reports"]]
    out += [bytes.fromhex(r["report"]) for r in VECTORS["refused"]]
    out += [bytes.fromhex(r["report"]) for r in VECTORS["accepted_edge"]]
    out.append(core.encode({"clock_offset_s": -2 ** 31, "rssi": -128, "last_error": "é" * 16, "slot": 0}))
    return out
