"""Each recommendation triggered by its condition; the score and bucket (literal expectations)."""

from verifier.health.core import bucket, recommend, score

NOW = 1_767_225_600
OK_REPORT = {"heap_min": 30000, "flash_free": 1_000_000, "rssi": -60, "boot_count": 5, "auth_failures": 0,
             "clock_offset_s": 1, "app_version": "1.4.2", "received_at": NOW}
CTX = {"now": NOW, "drift_s": 30, "latest_release": "1.4.2", "cert_not_after": None}
DEV = {"psk_expires_at": NOW + 365 * 86400, "status": "active"}


def codes(latest, history=(), device=DEV, **ctx):
    return [r["code"] for r in recommend(dict(OK_REPORT, **latest), list(history), device, dict(CTX, **ctx))]


def test_healthy_has_none():
    assert codes({}) == []


def test_heap_low_shrinking_heap():
    hist = [dict(OK_REPORT, heap_min=20000, received_at=NOW - 1800), dict(OK_REPORT, heap_min=12000, received_at=NOW - 900)]
    assert codes({"heap_min": 8191}, hist) == ["heap_low"]
    assert codes({"heap_min": 8192}, hist) == []


def test_reset_loop_rising_boot_count():
    hist = [dict(OK_REPORT, boot_count=5, received_at=NOW - 3000), dict(OK_REPORT, boot_count=6, received_at=NOW - 2000),
            dict(OK_REPORT, boot_count=7, received_at=NOW - 1000)]
    assert codes({"boot_count": 8}, hist) == ["reset_loop"]
    assert codes({"boot_count": 7}, hist) == []


def test_clock_drift_beyond_half():
    assert codes({"clock_offset_s": -16}) == ["clock_drift"]
    assert codes({"clock_offset_s": 15}) == []


def test_credential_expiring_in_10_days():
    assert codes({}, device={"psk_expires_at": NOW + 10 * 86400}) == ["credential_expiring"]
    assert codes({}, cert_not_after=NOW + 29 * 86400) == ["credential_expiring"]


def test_firmware_behind_newer_release():
    assert codes({}, latest_release="1.10.0") == ["firmware_behind"]
    assert codes({"app_version": "1.10.0"}, latest_release="1.9.9") == []


def test_weak_signal_and_flash_low():
    assert codes({"rssi": -85}) == ["weak_signal"]
    assert codes({"flash_free": 10 * 1024}) == ["flash_low"]


def test_auth_failures_rising():
    hist = [dict(OK_REPORT, auth_failures=1, received_at=NOW - 1800), dict(OK_REPORT, auth_failures=2, received_at=NOW - 900)]
    assert codes({"auth_failures": 4}, hist) == ["auth_failures_rising"]
    assert codes({"auth_failures": 2}, hist) == []


def test_score_and_bucket():
    recs = [{"severity": "critical"}, {"severity": "warning"}, {"severity": "info"}]
    assert score(recs) == 40
    assert score(recs, attestation_warning=True) == 20
    assert score([]) == 100
    assert bucket(100) == "healthy" and bucket(80) == "degraded" and bucket(50) == "degraded"
    assert bucket(49) == "unhealthy" and bucket(None) == "unknown"
    assert bucket(100, status="compromised") == "compromised"
    assert bucket(100, attestation_status="contraindicated") == "compromised"
