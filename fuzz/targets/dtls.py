"""The DTLS 1.2 PSK server (verifier/dtls/: records, handshake, cookies, the PSK lookup on a real
registry) with CoAP on the channel, as the UDP driver composes them (fuzz.conversation.dispatch).

An input is up to 16 datagrams (fuzz.harness.SEP); each one's first byte picks the source address
(bits 0-1) and moves the clock (bits 2-4: 0..7 s; bit 5: past the handshake timeout). The seeds are
a recorded handshake of the device's client and three CoAP requests, which replay exactly because
every input starts a fresh server with the same seeded randomness (and the registry writes of an
input are rolled back). receive() documents no exception (a bad datagram is dropped or answered
with an alert), nor does CoAP handling. Checked: state bounds, and that a source with no state gets
no more bytes back than it sent (the cookie exchange must not amplify; the one exception is the
15-byte fatal alert to a malformed record of 14 bytes or less, one byte more than it was sent).
"""

from fuzz.conversation import dispatch, record, server
from fuzz.harness import check, frames, join
from fuzz.world import T0, World

ALLOWED = ()
ADDRS = (("192.0.2.10", 5684), ("192.0.2.10", 5685), ("198.51.100.1", 5684), ("2001:db8::1", 5684, 0, 0))


class _Rollback(Exception):
    pass


def make(workdir):
    world = World(workdir + "/world")
    storage = world.storage

    def one_input(data):
        srv, auth, coap = server(world)
        srv.max_half_open, srv.max_half_open_per_host = 8, 2
        now = float(T0)
        try:
            with storage.transaction():
                for msg in frames(data):
                    ctl, dgram = (msg[0], msg[1:]) if msg else (0, b"")
                    addr = ADDRS[ctl & 3]
                    now += (ctl >> 2 & 7) + (120 if ctl & 32 else 0)
                    fresh = srv.session(addr) is None and srv.half_open_count == 0
                    replies, events = dispatch(srv, coap, dgram, addr, now)
                    check(all(type(r) in (bytes, bytearray) for r in replies), "a reply is not bytes")
                    if fresh and srv.half_open_count == 0:
                        # a source with no state gets no more bytes than it sent (one HelloVerifyRequest
                        # per hello record), or the one 15-byte fatal alert to a malformed record
                        check(sum(map(len, replies)) <= max(len(dgram), 15), "a stateless reply larger than its request")
                    check(srv.half_open_count <= 8 and srv.session_count <= 4, "state bounds exceeded")
                auth.flush()
                raise _Rollback
        except _Rollback:
            pass

    return one_input


def seeds(workdir):
    from pathlib import Path
    conv = record(Path(workdir))
    c = conv["client"]
    out = [join([b"\x00" + d for d in c])]                       # the whole conversation
    out.append(join([b"\x00" + d for d in c[:2]]))               # up to the ServerHello flight
    out.append(join([b"\x00" + d for d in c[:3]] + [b"\x00" + c[2]]))   # Finished flight resent
    out.append(join([b"\x00" + c[0], b"\x01" + c[0], b"\x02" + c[1]]))  # other sources
    out.append(join([b"\x00" + d for d in c] + [b"\x00" + c[-1], b"\x20" + c[-2]]))  # replayed record, idle
    return out
