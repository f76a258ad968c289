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

def byte_deltas(history, latest):
    """(rx, tx): the bytes the board received and sent between the last report in `history` (older decoded
    reports, oldest first) that carried the counter and `latest`. 0 without such a report (no baseline).
    After a reboot (boot_count changed, or uptime_s went down) or when the counter went down (a reboot the
    report does not show, or the 32-bit wrap) the counter restarted: the new value is the delta."""
    out = []
    for name in ("bytes_rx", "bytes_tx"):
        new = latest.get(name)
        prev = next((h for h in reversed(history) if h.get(name) is not None), None)
        if new is None or prev is None:
            out.append(0)
            continue
        rebooted = (latest.get("boot_count") is not None and prev.get("boot_count") is not None
                    and latest["boot_count"] != prev["boot_count"]) or \
                   (latest.get("uptime_s") is not None and prev.get("uptime_s") is not None
                    and latest["uptime_s"] < prev["uptime_s"])
        out.append(new if rebooted or new < prev[name] else new - prev[name])
    return tuple(out)


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


def recommend(latest, history, device, context):
    """Recommendations [{code, severity, message}] for the latest decoded report `latest`, its
    `history` (older decoded reports with "received_at", oldest first), the device row `device` and
    `context` (now, drift_s, latest_release: a version or None, cert_not_after: a time or None)."""
    now = context["now"]
    out = []

    def add(code, severity, message):
        out.append({"code": code, "severity": severity, "message": message})

    hm = latest.get("heap_min")
    if hm is not None and hm < HEAP_LOW_BYTES:
        add("heap_low", "warning", f"lowest free heap since boot is {hm} bytes (< {HEAP_LOW_BYTES}): "
            "reduce buffers or look for a leak")
    # reset loop: >= 3 boots within the last hour per the reports' boot_count
    boots = [(h["received_at"], h["boot_count"]) for h in history + [latest]
             if h.get("boot_count") is not None and h.get("received_at") is not None]
    recent = [b for t, b in boots if t >= now - RESET_LOOP_S]
    crashy = [h.get("reset_cause") for h in history[-2:] + [latest]].count(7) + \
        [h.get("reset_cause") for h in history[-2:] + [latest]].count(3)
    if (recent and max(recent) - min(recent) >= RESET_LOOP_BOOTS) or crashy >= 3:
        add("reset_loop", "critical", "the board rebooted at least 3 times within an hour (or keeps "
            "resetting by crash or watchdog): check the last error and power supply")
    off = latest.get("clock_offset_s")
    drift = context.get("drift_s")
    if off is not None and drift and abs(off) > drift / 2:
        add("clock_drift", "warning", f"board clock is {off} s off the server (more than half the allowed "
            f"drift of {drift} s): sync its time more often")
    limit = now + CREDENTIAL_DAYS * 86400
    exp = device.get("psk_expires_at") if device else None
    cert = context.get("cert_not_after")
    if (exp is not None and exp <= limit) or (cert is not None and cert <= limit):
        add("credential_expiring", "warning", "a credential (PSK or certificate) expires within 30 days: rotate it")
    rel, ver = context.get("latest_release"), latest.get("app_version")
    if rel and ver and _version_key(ver) < _version_key(rel):
        add("firmware_behind", "info", f"the board runs {ver}; release {rel} is published: update it")
    rssi = latest.get("rssi")
    if rssi is not None and rssi < WEAK_RSSI:
        add("weak_signal", "info", f"Wi-Fi signal {rssi} dBm is below {WEAK_RSSI} dBm: move the board or its antenna")
    ff = latest.get("flash_free")
    if ff is not None and ff < FLASH_LOW_BYTES:
        add("flash_low", "warning", f"only {ff} bytes free on flash (< {FLASH_LOW_BYTES}): an OTA update may not fit")
    af = [h["auth_failures"] for h in history + [latest] if h.get("auth_failures") is not None]
    if len(af) >= 2 and af == sorted(af) and af[-1] - af[0] >= AUTH_FAILURES_RISE:
        add("auth_failures_rising", "warning", f"authentication failures rose from {af[0]} to {af[-1]} across the "
            "last reports: check its clock and credentials, or someone probing it")
    return out


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
