"""tools/output.py: readable times on a fixed clock and time zone, aligned tables cut to a width, key-value
lines; and `janua device show`'s text from a fixed document (its times on the same fixed clock)."""

from datetime import timedelta, timezone

import pytest

from tools import output
from tools.device import format_show

NOW = 1_796_292_000          # 2026-12-03 10:00:00 UTC
UTC = timezone.utc


@pytest.mark.parametrize("delta, text", [
    (0, "just now"), (-59, "just now"), (59, "just now"),
    (-60, "1 min ago"), (-180, "3 min ago"), (-3599, "59 min ago"), (300, "in 5 min"),
    (-3600, "1 h ago"), (7200, "in 2 h"), (-(2 * 86400 - 1), "47 h ago"),
    (-2 * 86400, "2 d ago"), (400 * 86400, "in 400 d"),
])
def test_ago(delta, text):
    assert output.ago(NOW + delta, NOW) == text


def test_when_local_time_to_the_minute_and_relative():
    assert output.when(NOW - 180, NOW, UTC) == "2026-12-03 09:57 (3 min ago)"
    assert output.when(NOW + 7200 + 59, NOW, UTC) == "2026-12-03 12:00 (in 2 h)"
    assert output.when(NOW - 180, NOW, timezone(timedelta(hours=1))) == "2026-12-03 10:57 (3 min ago)"
    assert output.when(None, NOW, UTC) == "never"


def test_table_aligned_and_cut_to_width():
    rows = [("0011223344556677", "SN-1", None), ("8899aabbccddeeff", "A-VERY-LONG-SERIAL-NUMBER-0001", "active")]
    assert output.table(("id", "serial", "status"), rows) == (
        "ID                SERIAL                          STATUS\n"
        "0011223344556677  SN-1                            -\n"
        "8899aabbccddeeff  A-VERY-LONG-SERIAL-NUMBER-0001  active")
    assert output.table(("id", "serial", "status"), rows, width=40) == (
        "ID                SERIAL          STATUS\n"
        "0011223344556677  SN-1            -\n"
        "8899aabbccddeeff  A-VERY-LONG-S…  active")
    # the columns to cut first (not below their floor), then the widest
    assert output.table(("id", "serial", "note"), [("1", "SN-1-LONGER", "a long free text")], width=29,
                        cut_first=(2,)) == ("ID  SERIAL       NOTE\n"
                                            "1   SN-1-LONGER  a long free…")
    assert output.table(("id", "serial", "note"), [("1", "SN-1-LONGER", "a long free text")], width=22,
                        cut_first=(2,)) == ("ID  SERIAL    NOTE\n"
                                            "1   SN-1-LO…  a long …")
    assert output.table(("id", "serial", "status"), rows, width=38, cut_first=(2,)) == (
        "ID                SERIAL        STATUS\n"
        "0011223344556677  SN-1          -\n"
        "8899aabbccddeeff  A-VERY-LONG…  active")
    # too narrow for the floors: a cut column keeps 8 characters (or its header's), the first is never cut
    assert output.table(("id", "serial"), rows, width=10) == (
        "ID                SERIAL\n"
        "0011223344556677  SN-1\n"
        "8899aabbccddeeff  A-VERY-…")


def test_fields_align_values():
    assert output.fields([("device", "0011"), ("last auth", None)]) == "device:    0011\nlast auth: -"


def test_device_show_text_from_a_fixed_document():
    doc = {
        "device": {"device_id": "0011223344556677", "serial_number": "SN-7", "tenant": "acme",
                   "manufacturer_id": "acme-hw", "model_id": "m1", "status": "suspended",
                   "status_changed_at": NOW - 180, "provisioned_at": NOW - 3 * 86400,
                   "last_authenticated_at": NOW - 7200, "last_seen_at": NOW - 7200,
                   "metadata": {"firmware_version": "1.4.2", "group": "lab", "tags": ["a", "b"],
                                "capabilities": []},
                   "credential": {"type": "symmetric", "present": True},
                   "psk": {"generation": 2, "expires_at": NOW + 30 * 86400},
                   "security": {"trust_level": 40, "compromised": False, "quarantined": True},
                   "attestation_status": "warning"},
        "certificates": {"certificates": [
            {"key_type": "p256", "serial": "ab01", "not_after": NOW + 86400 * 300, "revoked_at": None,
             "reason": None, "on_hold": True},
            {"key_type": "p256", "serial": "ab00", "not_after": NOW, "revoked_at": NOW - 600,
             "reason": "superseded", "on_hold": False}]},
        "health": {"score": 72, "bucket": "degraded", "received_at": NOW - 60,
                   "recommendations": [{"message": "low heap"}]},
        "attestation": {"latest": {"created": NOW - 86400}},
        "last_authentications": [{"ts": NOW - 7200, "transport": "udp", "action": "binauth",
                                  "source": "10.0.0.9", "result": "OK", "reason": None}],
    }
    assert format_show(doc, NOW, UTC) == (
        "device:         0011223344556677\n"
        "serial:         SN-7\n"
        "tenant:         acme\n"
        "manufacturer:   acme-hw\n"
        "model:          m1\n"
        "status:         suspended, quarantined since 2026-12-03 09:57 (3 min ago)\n"
        "provisioned:    2026-11-30 10:00 (3 d ago)\n"
        "last auth:      2026-12-03 08:00 (2 h ago)\n"
        "last seen:      2026-12-03 08:00 (2 h ago)\n"
        "firmware:       1.4.2\n"
        "group:          lab\n"
        "tags:           a, b\n"
        "credential:     symmetric, present\n"
        "dtls psk:       generation 2, expires 2027-01-02 10:00 (in 30 d)\n"
        "certificate:    p256 serial ab01, on hold\n"
        "certificate:    p256 serial ab00, revoked 2026-12-03 09:50 (10 min ago) (superseded)\n"
        "trust level:    40\n"
        "attestation:    warning, last 2026-12-02 10:00 (24 h ago)\n"
        "health:         72/100 (degraded), report 2026-12-03 09:59 (1 min ago); low heap\n"
        "authentication: 2026-12-03 08:00 (2 h ago) udp/binauth from 10.0.0.9 OK")
