"""Chain top-up and sync (docs/tokens.md): the online half of janua.chain, loaded only when the
device talks to its verifier (an offline authentication imports janua.chain alone).

`sync` reports the used indices with the device token as bearer and stores the tokens the verifier
sends. `top_up` checks them (size, version, this device's id, increasing indices beyond those held,
the SHA-256 links to each other and to the last held token), then writes the new chain.bin (unused,
unexpired old slots + new ones) atomically BEFORE compacting chain.used to the indices the verifier
has not acknowledged yet: a cut between the two leaves used indices in the log that are no longer
in the chain (reported again, harmless), never a used token without its log entry. The JWKS and the
revocation list of a sync answer are dropped: the device verifies no one's tokens.
"""

import struct
from hashlib import sha256
from binascii import unhexlify
from micropython import const
from janua import AuthError
from janua.chain import CHAIN, MAGIC, SLOT, ChainError, FIELDS_AT

_MAX_SYNC = const(16384)  # a sync answer: 30 tokens (6.5 KB) + keys + revocations + config


def check_new(ch, tokens, have, prev_token=None):
    """The verifier's new tokens (hex) as bytes, after the checks a device can make."""
    out = []
    last = prev_token
    for t in tokens:
        try:
            b = unhexlify(t) if isinstance(t, str) else b""
        except ValueError:
            b = b""
        if len(b) != SLOT or b[0] != 1 or b[5:13] != ch.device_id:
            raise ChainError("malformed chain token from the verifier")
        index, nbf, exp = struct.unpack_from(">HII", b, FIELDS_AT)
        if index <= have or exp <= nbf:
            raise ChainError("chain token %d out of order" % index)
        if last is not None and struct.unpack_from(">H", last, FIELDS_AT)[0] == index - 1 \
                and sha256(last).digest()[:16] != b[27:43]:
            raise ChainError("chain token %d does not link to %d" % (index, index - 1))
        out.append(b)
        last, have = b, index
    return out


def top_up(ch, tokens, period, validity, now, acked=(), drift_s=300):
    """Rewrite chain.bin with the unused, unexpired old tokens plus `tokens` (hex, in index
    order), then compact chain.used to the used indices the verifier has not acknowledged."""
    used = ch.load_used()
    try:
        hdr = ch.header()
    except ChainError:
        hdr = None                      # a broken chain.bin is replaced whole
    count = hdr[1] if hdr else 0
    keep, high, last = [], -1, None
    if count:
        f = ch.fs.open(ch.p(CHAIN), "rb")
        try:
            for i in range(count):
                index, nbf, exp = ch._fields(f, i)
                high = index
                if index not in used and exp + drift_s > now:
                    keep.append(i)
        finally:
            f.close()
        last = ch.slot(count - 1)
    new = check_new(ch, tokens, high, last)
    if not new:
        return 0
    first = struct.unpack_from(">H", ch.slot(keep[0]) if keep else new[0], FIELDS_AT)[0]

    def write(f):
        f.write(MAGIC + struct.pack(">HHII", first, len(keep) + len(new), period, validity))
        for i in keep:
            f.write(ch.slot(i))
        for b in new:
            f.write(b)
    ch._atomic(CHAIN, write)          # first: the used tokens leave chain.bin
    ch._rewrite_used([i for i in used if i not in acked])   # then the log shrinks
    return len(new)


def sync(ch, tokens, now, drift_s=300, ota=None):
    """POST /v1/auth/device/sync with `tokens.bearer()`: report used indices, store a top-up.
    Returns {"added", "used_ack", "update_available", "config", "next_update"}."""
    import gc
    from janua.jsonstream import call
    # The reply holds up to 30 tokens (~7 KB): parsed as it arrives (no 7 KB block in one piece,
    # which LittleFS's small allocations at boot can leave the heap without); collect first, so the
    # request's small allocations fill the holes garbage left instead of splitting free space.
    gc.collect()
    used = sorted(ch.load_used())
    try:
        have = ch.status()[2]
    except ChainError:
        have = -1
    doc = {"used": used, "have": have}
    if ota:
        doc["ota"] = ota
    status, out = call(tokens.host, tokens.port, "POST", "/v1/auth/device/sync", doc,
                       bearer=tokens.bearer(), cap=_MAX_SYNC, timeout=tokens.timeout, tls=tokens.tls)
    if status != 200 or not isinstance(out, dict):
        raise AuthError("sync: http %d" % status)
    out.pop("keys", None)              # verifier-only material: drop it before the top-up
    rev = out.pop("revocations", None)
    acked = [i for i in out.get("used_ack") or () if i in used]
    cp = out.get("chain") if isinstance(out.get("chain"), dict) else {}
    new = out.get("tokens") or []
    added = top_up(ch, new, cp.get("period", 86400), cp.get("validity", 86400), now,
                   acked, drift_s) if new else 0
    return {"added": added, "used_ack": acked, "update_available": out.get("update_available") is True,
            "config": out.get("config") if isinstance(out.get("config"), dict) else {},
            "next_update": rev.get("next_update") if isinstance(rev, dict) else None}
