"""The health report (docs/health.md 1), the piggy-back tag (2.1), recommendations and the score
(docs/health.md 4). Sans-IO: time is an argument."""

import hmac

VERSION = 1
MAX_REPORT = 128
MAX_STRING = 32
MAX_U32 = 0xFFFFFFFF
PIGGY_MIN, PIGGY_MAX = 20 + 3 + 8, 20 + MAX_REPORT + 8     # 31 .. 156 bytes
TAG_LEN = 8

# bit -> (name, kind)
FIELDS = (("heap_free", "u"), ("heap_min", "u"), ("flash_free", "u"), ("uptime_s", "u"),
          ("reset_cause", "u8"), ("boot_count", "u"), ("rssi", "i8"), ("auth_failures", "u"),
          ("errors", "u"), ("last_error", "s"), ("clock_offset_s", "z"), ("bytes_tx", "u"),
          ("bytes_rx", "u"), ("app_version", "s"), ("slot", "u8"))
RESET_CAUSES = ("unknown", "power_on", "hard_reset", "watchdog", "deep_sleep", "soft_reset", "brown_out", "crash")
SLOTS = ("a", "b")


class Refused(Exception):
    """A refused report; `.reason` is one of docs/health.md 1's reasons."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


_U, _U8, _I8, _S, _Z = range(5)
_KINDS = {"u": _U, "u8": _U8, "i8": _I8, "s": _S, "z": _Z}
_PLAN = tuple((name, _KINDS[kind]) for name, kind in FIELDS)


def decode(report):
    """The fields of a report (a dict of the present ones), or Refused. One pass, the varints inline (this
    runs for every report the verifier ingests)."""
    b = bytes(report)
    n = len(b)
    if n > MAX_REPORT:
        raise Refused("too_large")
    if n < 3:
        raise Refused("malformed")
    if b[0] != VERSION:
        raise Refused("version")
    m = (b[1] << 8) | b[2]
    if m & 0x8000:
        raise Refused("reserved_field")
    out, i = {}, 3
    for name, kind in _PLAN:
        if not m:
            break
        present, m = m & 1, m >> 1
        if not present:
            continue
        if i >= n:
            raise Refused("malformed")
        c = b[i]
        i += 1
        if kind == _U8:
            if name == "reset_cause" and c > 7:
                raise Refused("bad_value")
            out[name] = c
            continue
        if kind == _I8:
            out[name] = c - 256 if c > 127 else c
            continue
        v = c
        if c & 0x80:                    # a uvarint of up to 5 bytes, at most 2^32 - 1
            v, shift = c & 0x7F, 7
            while True:
                if i >= n:
                    raise Refused("malformed")
                c = b[i]
                i += 1
                v |= (c & 0x7F) << shift
                if not c & 0x80:
                    break
                shift += 7
                if shift == 35:
                    raise Refused("field_too_large")
            if v > MAX_U32:
                raise Refused("field_too_large")
        if kind == _U:
            out[name] = v
        elif kind == _Z:
            out[name] = (v >> 1) ^ -(v & 1)
        else:
            if v > MAX_STRING:
                raise Refused("field_too_large")
            if i + v > n:
                raise Refused("malformed")
            try:
                out[name] = b[i:i + v].decode("utf-8")
            except UnicodeDecodeError:
                raise Refused("bad_value") from None
            i += v
    if i != n:
        raise Refused("malformed")
    return out


def _put_uvarint(n):
    out = bytearray()
    while True:
        c = n & 0x7F
        n >>= 7
        if n:
            out.append(c | 0x80)
        else:
            out.append(c)
            return bytes(out)


def encode(fields):
    """The report of `fields` (the inverse of decode; for tests and tools)."""
    bitmap, body = 0, bytearray()
    for bit, (name, kind) in enumerate(FIELDS):
        if name not in fields:
            continue
        bitmap |= 1 << bit
        v = fields[name]
        if kind == "u8":
            body.append(v)
        elif kind == "i8":
            body.append(v & 0xFF)
        elif kind == "u":
            body += _put_uvarint(v)
        elif kind == "z":
            body += _put_uvarint(((v << 1) ^ (v >> 31)) & MAX_U32)
        else:
            s = v.encode()
            body += _put_uvarint(len(s)) + s
    return bytes((VERSION,)) + bitmap.to_bytes(2, "big") + bytes(body)


def piggyback_tag(k_health, request20, report):
    return hmac.digest(k_health, bytes(request20) + bytes(report), "sha256")[:TAG_LEN]


def check_piggyback(k_health, request20, rest):
    """`rest`: the datagram after its 20-byte request (report || tag). The decoded report, or Refused."""
    rest = bytes(rest)
    if len(rest) < 3 + TAG_LEN:
        raise Refused("malformed")
    report, tag = rest[:-TAG_LEN], rest[-TAG_LEN:]
    if len(report) > MAX_REPORT:
        raise Refused("too_large")
    if not hmac.compare_digest(piggyback_tag(k_health, request20, report), tag):
        raise Refused("tag")
    return decode(report)


# ---- traffic (docs/health.md 3, "Data rate") ----

def brief(fields, received_at=None):
    """The few fields the rules read from a device's older reports, as a tuple: (received_at, boot_count,
    reset_cause, auth_failures, uptime_s, bytes_rx, bytes_tx), None where absent. The ingest keeps the
    last 8 of each device in memory this way (about 120 bytes each, not a dict of every field)."""
    g = fields.get
    return (received_at if received_at is not None else g("received_at"), g("boot_count"), g("reset_cause"),
            g("auth_failures"), g("uptime_s"), g("bytes_rx"), g("bytes_tx"))


_T, _BOOT, _CAUSE, _AUTHF, _UP, _RX, _TX = range(7)


def byte_deltas(history, latest):
    """(rx, tx): the bytes the board received and sent between the last report in `history` (older decoded
    reports, oldest first) that carried the counter and `latest`. 0 without such a report (no baseline).
    After a reboot (boot_count changed, or uptime_s went down) or when the counter went down (a reboot the
    report does not show, or the 32-bit wrap) the counter restarted: the new value is the delta."""
    return deltas([brief(h) for h in history], latest)


def deltas(briefs, latest):
    """byte_deltas() over the briefs of the older reports (the ingest's form)."""
    return _delta(briefs, latest, "bytes_rx", _RX), _delta(briefs, latest, "bytes_tx", _TX)


def _delta(briefs, latest, name, k):
    new = latest.get(name)
    if new is None:
        return 0
    for i in range(len(briefs) - 1, -1, -1):       # the newest older report that carried the counter
        prev = briefs[i]
        old = prev[k]
        if old is None:
            continue
        b0, b1 = prev[_BOOT], latest.get("boot_count")
        u0, u1 = prev[_UP], latest.get("uptime_s")
        if (b0 is not None and b1 is not None and b0 != b1) or (u0 is not None and u1 is not None and u1 < u0) \
                or new < old:
            return new
        return new - old
    return 0


# ---- recommendations (docs/health.md 4) ----

HEAP_LOW_BYTES = 8 * 1024
RESET_LOOP_BOOTS, RESET_LOOP_S = 3, 3600
CREDENTIAL_DAYS = 30
WEAK_RSSI = -80
FLASH_LOW_BYTES = 64 * 1024
AUTH_FAILURES_RISE = 3          # growth across the history window that counts as rising
PENALTY = {"critical": 40, "warning": 15, "info": 5}
ATTESTATION_PENALTY = 20


def _version_key(v):
    parts = []
    for p in str(v).split("."):
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


_SEVERITY = {"heap_low": "warning", "reset_loop": "critical", "clock_drift": "warning",
             "credential_expiring": "warning", "firmware_behind": "info", "weak_signal": "info",
             "flash_low": "warning", "auth_failures_rising": "warning"}
_MESSAGE = {
    "heap_low": "lowest free heap since boot is {0} bytes (< {1}): reduce buffers or look for a leak",
    "reset_loop": "the board rebooted at least 3 times within an hour (or keeps resetting by crash or "
                  "watchdog): check the last error and power supply",
    "clock_drift": "board clock is {0} s off the server (more than half the allowed drift of {1} s): sync its "
                   "time more often",
    "credential_expiring": "a credential (PSK or certificate) expires within 30 days: rotate it",
    "firmware_behind": "the board runs {0}; release {1} is published: update it",
    "weak_signal": "Wi-Fi signal {0} dBm is below {1} dBm: move the board or its antenna",
    "flash_low": "only {0} bytes free on flash (< {1}): an OTA update may not fit",
    "auth_failures_rising": "authentication failures rose from {0} to {1} across the last reports: check its "
                            "clock and credentials, or someone probing it",
}


def findings(latest, briefs, device, context):
    """[(code, args)] of the recommendations that apply (docs/health.md 4), in the table's order, without
    their sentences: what the ingest scores on every report. `latest`: the decoded report with
    "received_at"; `briefs`: brief() of the older reports, oldest first (a list or a deque)."""
    now = context["now"]
    out = []
    hm = latest.get("heap_min")
    if hm is not None and hm < HEAP_LOW_BYTES:
        out.append(("heap_low", (hm, HEAP_LOW_BYTES)))
    # reset loop: boot_count rising by >= 3 across the reports of the last hour, or the last 3 reports all
    # reset by crash (7) or watchdog (3)
    since = now - RESET_LOOP_S
    lo = hi = latest.get("boot_count")
    t = latest.get("received_at")
    if t is None or t < since:
        lo = hi = None
    crashy = 1 if latest.get("reset_cause") in (3, 7) else 0
    n = len(briefs)
    af = []
    for i in range(n):
        h = briefs[i]
        b = h[_BOOT]
        if b is not None and h[_T] is not None and h[_T] >= since:
            if lo is None or b < lo:
                lo = b
            if hi is None or b > hi:
                hi = b
        if i >= n - 2 and h[_CAUSE] in (3, 7):
            crashy += 1
        if h[_AUTHF] is not None:
            af.append(h[_AUTHF])
    if (lo is not None and hi - lo >= RESET_LOOP_BOOTS) or crashy >= 3:
        out.append(("reset_loop", ()))
    off = latest.get("clock_offset_s")
    drift = context.get("drift_s")
    if off is not None and drift and abs(off) > drift / 2:
        out.append(("clock_drift", (off, drift)))
    limit = now + CREDENTIAL_DAYS * 86400
    exp = device.get("psk_expires_at") if device else None
    cert = context.get("cert_not_after")
    if (exp is not None and exp <= limit) or (cert is not None and cert <= limit):
        out.append(("credential_expiring", ()))
    rel, ver = context.get("latest_release"), latest.get("app_version")
    if rel and ver and _version_key(ver) < _version_key(rel):
        out.append(("firmware_behind", (ver, rel)))
    rssi = latest.get("rssi")
    if rssi is not None and rssi < WEAK_RSSI:
        out.append(("weak_signal", (rssi, WEAK_RSSI)))
    ff = latest.get("flash_free")
    if ff is not None and ff < FLASH_LOW_BYTES:
        out.append(("flash_low", (ff, FLASH_LOW_BYTES)))
    a1 = latest.get("auth_failures")
    if a1 is not None:
        af.append(a1)
    if len(af) >= 2 and af[-1] - af[0] >= AUTH_FAILURES_RISE and all(af[i] <= af[i + 1] for i in range(len(af) - 1)):
        out.append(("auth_failures_rising", (af[0], af[-1])))
    return out


def recommend(latest, history, device, context):
    """Recommendations [{code, severity, message}] for the latest decoded report `latest`, its
    `history` (older decoded reports with "received_at", oldest first), the device row `device` and
    `context` (now, drift_s, latest_release: a version or None, cert_not_after: a time or None)."""
    return sentences(findings(latest, [brief(h) for h in history], device, context))


def sentences(found):
    """findings() as the document's recommendations [{code, severity, message}]."""
    return [{"code": c, "severity": _SEVERITY[c], "message": _MESSAGE[c].format(*a)} for c, a in found]


def score_of(found, attestation_warning=False):
    """The score of findings() (as score() of the recommendations)."""
    s = 100 - sum(PENALTY[_SEVERITY[c]] for c, _ in found)
    if attestation_warning:
        s -= ATTESTATION_PENALTY
    return max(0, min(100, s))


def score(recommendations, attestation_warning=False):
    s = 100 - sum(PENALTY[r["severity"]] for r in recommendations)
    if attestation_warning:
        s -= ATTESTATION_PENALTY
    return max(0, min(100, s))


def bucket(score_, status=None, attestation_status=None):
    if status == "compromised" or attestation_status == "contraindicated":
        return "compromised"
    if score_ is None:
        return "unknown"
    if score_ > 80:
        return "healthy"
    if score_ >= 50:
        return "degraded"
    return "unhealthy"


def slot_of(t, slot_s=900):
    return int(t) // slot_s * slot_s
