"""The claim over plain CoAP (docs/claims.md 13, docs/claims_board.md): one confirmable POST /claim on UDP.

janua.claim loads this module only when the claim image names a CoAP endpoint ("claim": {..., "coap": {"host",
"port"}}). `exchange()` sends the claim request with janua.coap's codec and its confirmable exchange (resends on
silence, ACK_TIMEOUT doubling, MAX_RETRANSMIT 4: RFC 7252 4.2, so bounded at about 93 s), and returns the
answer's bytes from a 2.04, or raises ClaimError("refused: <code>") for a 4.xx/5.xx (its diagnostic payload,
shown only when it is 1..40 of a-z and _: the refusal is unauthenticated). No DTLS: the claim and its answer
protect themselves (docs/claims.md 2, 3). It decides nothing about the answer: janua.claim checks it.
"""

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

import socket
from janua import ClaimError, TransportError
from janua import coap as _c

_CF_OCTETS = const(42)     # application/octet-stream
_CHANGED = const(68)       # 2.04
_MAX_DATAGRAM = const(1152)
_ECONNREFUSED = const(111)


class UDPChannel:
    """send(bytes) / recv(timeout) -> bytes, or None on silence: the channel janua.coap.request wants."""

    def __init__(self, host, port):
        try:
            addr = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0][-1]
        except OSError as e:
            raise TransportError("cannot resolve %s: %s" % (host, e))
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.connect(addr)      # the kernel drops datagrams from other sources

    def send(self, data):
        self.s.send(data)

    def recv(self, timeout):
        self.s.settimeout(timeout)
        try:
            d = self.s.recv(_MAX_DATAGRAM)
        except OSError as e:
            if e.args and e.args[0] == _ECONNREFUSED:     # ICMP port unreachable: nobody serves CoAP claims there
                raise TransportError("CoAP claim port refused")
            return None
        return d or None          # an empty datagram is nothing (janua.coap reads b"" as a closed channel)

    def close(self):
        self.s.close()


def _refused(code, payload):
    try:
        t = str(payload, "ascii")
    except (UnicodeError, ValueError):
        t = ""
    if code >= 128 and 0 < len(t) <= 40 and all("a" <= ch <= "z" or ch == "_" for ch in t):
        return "refused: %s" % t
    return "refused: coap %d.%02d" % (code >> 5, code & 31)   # and any other answer than 2.04


def exchange(co, req, rand, chan=None, ack_timeout=None, max_retransmit=4):
    """The claim answer for request `req` from the CoAP endpoint `co` ({"host", "port"}). `chan` replaces the
    UDP socket (tests); `ack_timeout` the RFC's random 2..3 s first wait. ClaimError for a refusal or a bad
    endpoint, TransportError when no answer comes."""
    try:
        host, port = co["host"], co["port"]
    except (KeyError, TypeError):
        raise ClaimError("claim config malformed (coap)")
    if not isinstance(host, str) or not isinstance(port, int) or not 0 < port < 65536:
        raise ClaimError("claim config malformed (coap)")
    r = rand(7)
    if ack_timeout is None:
        ack_timeout = 2.0 + r[6] / 255      # ACK_TIMEOUT .. ACK_TIMEOUT * ACK_RANDOM_FACTOR (1.5)
    own = chan is None
    if own:
        chan = UDPChannel(host, port)
    try:
        m = _c.request(chan, _c.POST, "claim", req, _CF_OCTETS, r[0] << 8 | r[1], r[2:6], ack_timeout,
                       max_retransmit)
    finally:
        if own:
            chan.close()
    code, payload = m[1], m[5]
    if code == _CHANGED:
        return bytes(payload)
    raise ClaimError(_refused(code, payload))
