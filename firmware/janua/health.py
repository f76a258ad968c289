"""The board's health report (docs/health.md): what the board knows about itself, in a few dozen bytes.

`report(hal, boots)` samples the heap, the flash, the hal (uptime, reset cause, Wi-Fi signal), the OTA
pointer (version and slot) and the counters the drivers keep since boot in `janua.health_c`, and encodes
them (section 1). `tail(key)` gives binauth.Client the bytes to append to each request (2.1, a report and
its tag); `due(cfg, state, now)` says whether this run should send one. It sends nothing itself: the
transports (udp.py, http.py, dtlsauth.py, mqtt.py, the OTA check) carry what it makes.
"""

import gc
import janua
from hashlib import sha256

# Field encodings by bit (section 1): u uvarint, b u8, i i8, s string, v svarint (zigzag).
_K = b"uuuubuiuusvuusb"
INTERVAL_S = 3600   # default cfg["health"]["interval_s"]; 0 turns reports off


def _uv(b, n):
    n &= 0xFFFFFFFF
    while n > 0x7F:
        b.append(0x80 | n & 0x7F)
        n >>= 7
    b.append(n)


def _str(v):
    # UTF-8, at most 32 bytes, never cut inside a character (the verifier refuses broken UTF-8)
    s = str(v).encode()
    if len(s) > 32:
        s = s[:33]
        j = 32
        while s[j] & 0xC0 == 0x80:
            j -= 1
        s = s[:j]
    return s


def encode(f):
    """The report of `f`, a list indexed by field bit (section 1); None or a missing index is absent."""
    b = bytearray(b"\x01\x00\x00")
    m = 0
    for i in range(min(len(f), 15)):
        v = f[i]
        if v is None:
            continue
        m |= 1 << i
        k = _K[i]
        if k == 117:        # u
            _uv(b, v)
        elif k == 118:      # v
            _uv(b, (v << 1) ^ (v >> 31))
        elif k == 115:      # s
            s = _str(v)
            b.append(len(s))
            b.extend(s)
        else:               # b, i: one byte
            b.append(v & 0xFF)
    b[1] = m >> 8
    b[2] = m & 0xFF
    return b


def _ask(hal, name):
    f = getattr(hal, name, None)
    try:
        return f() if f else None
    except Exception:   # a hal that cannot tell now (radio off) reports nothing for the field
        return None


def _flash(root):
    try:
        import os
        s = os.statvfs(root or "/")
        return min(s[0] * s[4], 0xFFFFFFFF)  # a host disk can hold more than a u32
    except (AttributeError, OSError):
        return None


def _ota(root):
    try:
        import json
        with open(root + "ota_ptr.json") as f:
            p = json.load(f)
        a = p.get("active")
        if a in ("a", "b"):
            v = p.get("version")
            return (v if isinstance(v, str) else None), (0 if a == "a" else 1)
    except (OSError, ValueError, AttributeError):
        pass
    return None, None


def report(hal=None, boots=None, root=""):
    """The health report of this board now (bytes of section 1)."""
    c = janua.health_c
    rc = _ask(hal, "reset_code")
    rssi = _ask(hal, "rssi")
    if rssi is not None:
        rssi = max(-128, min(127, rssi))
    ver, slot = _ota(root)
    fl = _flash(root)
    gc.collect()        # the garbage of reading the files goes before the heap is sampled
    free = janua.sample()
    return encode((free, c[0], fl, _ask(hal, "uptime_s"), rc if rc is not None and 0 <= rc <= 7 else None,
                   boots, rssi, c[1], c[2], c[3], c[4], c[5], c[6], ver, slot))


def tag(key, request, rep):
    """The 8-byte tag of a report piggy-backed on the 20-byte `request` (section 2.1): HMAC-SHA256 with
    one pad buffer turned from the inner into the outer pad in place (a 32-byte key; half the heap of
    mac.HMAC, which keeps both pads for the many checks of binary auth)."""
    p = bytearray(64)
    p[:len(key)] = key
    for i in range(64):
        p[i] ^= 0x36
    h = sha256(p)
    h.update(request)
    h.update(rep)
    d = h.digest()
    for i in range(64):
        p[i] ^= 0x6A        # 0x36 ^ 0x5C: the inner pad becomes the outer one
    h = sha256(p)
    h.update(d)
    return h.digest()[:8]


def tail(key, rep):
    """binauth.Client's tail: fn(request) -> report || tag for that request."""
    return lambda req: rep + tag(key, req, rep)


def due(cfg, state, now, fresh=False):
    """True when this run should send a report (docs/health.md 2.5): `fresh` (no report answered yet in this
    boot) unless cfg health.every_boot is false, or health.interval_s (default 3600; 0: never) has passed
    since state["health_at"], none was ever answered, or the clock is behind it (not set yet in this boot)."""
    h = cfg.get("health")
    h = h if isinstance(h, dict) else {}
    n = h.get("interval_s", INTERVAL_S)
    if not isinstance(n, int) or n <= 0:
        return False
    if fresh and h.get("every_boot", True) is not False:
        return True
    at = state.get("health_at")
    return not isinstance(at, int) or now < at or now - at >= n
