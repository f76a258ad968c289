"""Binary auth (docs/protocol.md section 3): BinAuthCore.decide on a real SQLite registry with one
provisioned device, then flush; and the reply decoder.

An input is up to 16 messages (fuzz.harness.SEP). Each message's first byte moves the clock (low
three bits: 0..7 s; bit 3: a jump of a day) and picks the source address (bits 4-5); the rest is the
datagram. decide() documents no exception at all: every datagram gets a 13- or 25-byte reply whose
status is one of the nine of section 3.2, and a reply with a tag (OK, TIME_SYNC, NOT_ACTIVE, REPLAY)
must verify under the device key for that request. Every input starts from the same state: the
registry writes of an input are rolled back, and the core and its limit store are new.
"""

import struct

from fuzz.harness import Invariant, check, frames, join
from fuzz.world import DEVICE_ID, MASTER, T0, World, vectors
from verifier import keys
from verifier.binauth.core import AUTHENTICATED, OK, decode_reply, encode_request
from verifier.errors import VerifierError
from verifier.registry.limits import MemoryLimitStore

ALLOWED = ()                        # decide() and flush() document no exception
SOURCES = (("192.0.2.1", 5683), ("192.0.2.1", 40000), ("198.51.100.7", 1234), "203.0.113.9")


class _Rollback(Exception):
    pass


def make(workdir):
    world = World(workdir)
    storage = world.storage
    key = world.binauth_key

    def one_input(data):
        storage.limits = MemoryLimitStore()
        core = world.core()
        now = float(T0)
        try:
            with storage.transaction():
                for i, msg in enumerate(frames(data)):
                    ctl, req = (msg[0], msg[1:]) if msg else (0, b"")
                    now += (ctl & 7) + (86400 if ctl & 8 else 0)
                    reply = core.decide(req, SOURCES[ctl >> 4 & 3], now, "fuzz")
                    check(type(reply) is bytes and len(reply) in (13, 25) and reply[0] < 9, f"reply {reply!r}")
                    check((len(reply) == 25) == (reply[0] == OK), "only OK has the 25-byte reply")
                    if reply[0] in AUTHENTICATED:
                        check(decode_reply(key, req, reply)["authenticated"], "an authenticated status with a bad tag")
                    elif reply[1:] != bytes(12):
                        raise Invariant("an unauthenticated refusal carries time or a tag")
                    if i % 4 == 3:
                        core.flush()
                core.flush()
                raise _Rollback
        except _Rollback:
            pass
        # the client-side decoder on the same bytes (tools and tests use it on untrusted replies)
        if len(data) >= 20:
            try:
                decode_reply(key, data[:20], data[20:])
            except VerifierError:       # its documented refusal of a malformed reply
                pass

    return one_input


def seeds(workdir):
    k = keys.derive_key(MASTER, keys.LABEL_BINAUTH)
    out = []
    v = vectors("binauth.json") or {}
    reqs = [bytes.fromhex(r["request"]) for r in v.get("requests", [])]
    out.append(join([b"\x00" + r for r in reqs]))
    fresh = [encode_request(k, DEVICE_ID, T0 + i) for i in range(1, 6)]
    out.append(join([b"\x01" + r for r in fresh]))                         # five OKs
    out.append(join([b"\x01" + fresh[0], b"\x01" + fresh[0]]))              # OK then REPLAY
    forged = fresh[1][:12] + bytes(8)
    out.append(join([b"\x00" + forged] * 6 + [b"\x01" + fresh[2]]))       # lockout
    out.append(join([b"\x09" + fresh[3]]))                                  # TIME_SYNC (a day later)
    out.append(join([b"\x10" + b"\x00" * 12, b"\x20" + bytes(8) + struct.pack(">I", T0) + bytes(8)]))
    for r in v.get("replies", []):
        out.append(bytes.fromhex(r["request"]) + bytes.fromhex(r["reply"]))
    return out
