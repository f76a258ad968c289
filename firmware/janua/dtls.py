"""A sans-IO DTLS 1.2 PSK client, TLS_PSK_WITH_AES_128_CCM_8 only (PROTOCOLS.md section 1).

Bytes in, bytes out: `start()` gives the first datagram, `receive(datagram)` consumes one and
returns the datagram to send back (a new flight, or the last flight again when the server resent
its previous one) or None, `retransmit()` rebuilds the last flight with fresh record sequence
numbers for the driver's timer, `send(data)` and `close()` give protected records. Received
application data is queued in `inbox`. The handshake is the transition table `_NEXT`; a message
the table does not expect raises DTLSError, as does a fatal alert or a server Finished that does
not verify (compared in constant time). Offered: C0A8 with the renegotiation SCSV 00FF, and the
extended master secret (RFC 7627) used if the server echoes it. Handled: cookie exchange (every
HelloVerifyRequest is answered with the same random), an optional identity hint.
Not done: fragmented handshake messages (dropped; none of the peers fragment a PSK handshake),
renegotiation, session resumption, the server side. The driver (dtls_udp.py) owns time and sockets.
"""

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from hashlib import sha256
from janua import DTLSError
from janua.mac import ct_eq
from janua.prf import prf, master_secret, key_block
from janua.dtls_record import RecordLayer, CCS, ALERT, HANDSHAKE, APP_DATA

# States, exposed to the driver.
HELLO = const(0)  # ClientHello sent, waiting for HelloVerifyRequest or ServerHello
_SERVER_HELLO = const(1)
_HINT = const(2)  # ServerKeyExchange (identity hint) seen
_WAIT_CCS = const(3)  # our second flight sent
_WAIT_FIN = const(4)
OPEN = const(5)
CLOSED = const(6)
FAILED = const(7)

# Events: handshake message types, plus the ChangeCipherSpec record.
_SH = const(2)
_HVR = const(3)
_SKE = const(12)
_SHD = const(14)
_CKE = const(16)
_FIN = const(20)
_EV_CCS = const(256)

_NEXT = {
    (HELLO, _HVR): HELLO,
    (HELLO, _SH): _SERVER_HELLO,
    (_SERVER_HELLO, _SKE): _HINT,
    (_SERVER_HELLO, _SHD): _WAIT_CCS,
    (_HINT, _SHD): _WAIT_CCS,
    (_WAIT_CCS, _EV_CCS): _WAIT_FIN,
    (_WAIT_FIN, _FIN): OPEN,
}

_MAX_MSG = const(512)  # no PSK handshake message comes near this
_MAX_TRANSCRIPT = const(2048)
_FATAL = const(2)
_CLOSE_NOTIFY = const(0)


def _u16(n):
    return bytes((n >> 8, n & 0xFF))


def _msg(typ, seq, body):
    # A whole (unfragmented) handshake message with its 12-byte DTLS header.
    n = len(body)
    l3 = bytes((n >> 16, (n >> 8) & 0xFF, n & 0xFF))
    return bytes((typ,)) + l3 + _u16(seq) + b"\x00\x00\x00" + l3 + body


class DTLSClient:
    """One DTLS-PSK session. `identity` and `psk` are bytes; `rand(n)` gives n random bytes."""

    def __init__(self, identity, psk, rand=None, ems=True):
        if rand is None:
            from os import urandom as rand
        if not 0 < len(psk) <= 64 or len(identity) > 128:
            raise DTLSError("psk/identity length")
        self._id = identity
        self._psk = psk
        self._cr = rand(32)
        self._ems_offer = ems
        self.ems = False
        self.hint = None
        self.state = HELLO
        self.alert = None  # description of the last alert received
        self.flights = 0  # counts new flights: the driver resets its timer when it changes
        self.inbox = []
        self._cookie = b""
        self._mseq = 0  # our next handshake message_seq
        self._rseq = 0  # the server's next expected message_seq
        self._tr = b""
        self._dup = False
        self._rl = RecordLayer()

    # -- flights -------------------------------------------------------------------------------
    def start(self):
        return self._new_flight([(0, HANDSHAKE, self._hello())])

    def _hello(self):
        ext = b"\x00\x04\x00\x17\x00\x00" if self._ems_offer else b""
        body = (b"\xfe\xfd" + self._cr + b"\x00" + bytes((len(self._cookie),)) + self._cookie
                + b"\x00\x04\xc0\xa8\x00\xff\x01\x00" + ext)
        m = _msg(1, self._mseq, body)
        self._mseq += 1
        self._tr = m  # the transcript starts at the last ClientHello (RFC 6347 4.2.1)
        return m

    def _new_flight(self, flight):
        self._flight = flight
        self.flights += 1
        return self.retransmit()

    def retransmit(self):
        """The whole last flight again, as new records (fresh sequence numbers, re-encrypted)."""
        if self.state >= OPEN:
            return None
        rl = self._rl
        return b"".join([rl.seal(t, b, e) for e, t, b in self._flight])

    # -- receive -------------------------------------------------------------------------------
    def receive(self, d):
        """Consume one datagram (bytes); the datagram to send in answer, or None."""
        out = None
        self._dup = False
        if self.state >= CLOSED:
            return None
        for typ, body in self._rl.records(d):
            if typ == HANDSHAKE:
                o = 0
                while len(body) - o >= 12 and self.state < OPEN:
                    r = self._handshake(body, o)
                    if r is None:
                        break  # malformed or fragmented: drop the rest of the record
                    o, f = r
                    if f is not None:
                        out = f
            elif typ == CCS:
                if len(body) == 1 and body[0] == 1 and self.state == _WAIT_CCS:
                    self._step(_EV_CCS)
                    self._rl.read_epoch = 1
            elif typ == ALERT and len(body) == 2:
                self._alert(body[0], body[1])
            elif typ == APP_DATA and self.state == OPEN:
                self.inbox.append(bytes(body))
        if out is None and self._dup:
            out = self.retransmit()  # once per datagram, however many duplicates it held
        self._dup = False
        return out

    def _alert(self, level, desc):
        self.alert = desc
        if desc == _CLOSE_NOTIFY:
            self.state = CLOSED
        elif level == _FATAL:
            self.state = FAILED
            raise DTLSError("fatal alert %d" % desc)

    def _step(self, ev):
        nxt = _NEXT.get((self.state, ev))
        if nxt is None:
            self.state = FAILED
            raise DTLSError("unexpected msg %d in state %d" % (ev, self.state))
        self.state = nxt

    def _handshake(self, b, o):
        # One message at b[o:]. Returns (next offset, datagram to send or None), or None to drop.
        typ = b[o]
        n = (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]
        seq = (b[o + 4] << 8) | b[o + 5]
        foff = (b[o + 6] << 16) | (b[o + 7] << 8) | b[o + 8]
        flen = (b[o + 9] << 16) | (b[o + 10] << 8) | b[o + 11]
        end = o + 12 + n
        if foff or flen != n or n > _MAX_MSG or end > len(b):
            return None
        if self.state == HELLO:
            self._rseq = seq  # the server's numbering starts at its first answer
        if seq < self._rseq:
            # The server resent its previous flight: ours was lost (receive() resends it).
            self._dup = True
            return end, None
        if seq > self._rseq:
            return end, None  # from the future (a lost message before it): drop, wait for resend
        self._rseq = seq + 1
        self._step(typ)
        body = b[o + 12:end]
        if typ == _HVR:
            return end, self._on_hvr(body)
        if typ != _FIN:
            self._tr += b[o:end]
        if self._tr and len(self._tr) > _MAX_TRANSCRIPT:
            raise DTLSError("handshake too long")
        if typ == _SH:
            self._on_server_hello(body)
        elif typ == _SKE:
            if len(body) < 2 or (body[0] << 8 | body[1]) != len(body) - 2:
                raise DTLSError("bad ServerKeyExchange")
            self.hint = bytes(body[2:])
        elif typ == _SHD:
            if n:
                raise DTLSError("bad ServerHelloDone")
            return end, self._second_flight()
        elif typ == _FIN:
            self._on_finished(body)
        return end, None

    def _on_hvr(self, b):
        # server_version (fe ff or fe fd), cookie<0..255>. Answer with the same random.
        if len(b) < 3 or b[2] != len(b) - 3:
            raise DTLSError("bad HelloVerifyRequest")
        self._cookie = bytes(b[3:])
        return self._new_flight([(0, HANDSHAKE, self._hello())])

    def _on_server_hello(self, b):
        ln = len(b)
        if ln < 38 or b[0] != 0xFE or b[1] != 0xFD:
            raise DTLSError("bad ServerHello")
        self._sr = bytes(b[2:34])
        o = 35 + b[34]
        if o + 3 > ln or b[o] != 0xC0 or b[o + 1] != 0xA8 or b[o + 2]:
            raise DTLSError("bad ServerHello")
        o += 3
        if o == ln:
            return
        if o + 2 > ln or (b[o] << 8 | b[o + 1]) != ln - o - 2:
            raise DTLSError("bad ServerHello")
        o += 2
        while o < ln:
            if o + 4 > ln:
                raise DTLSError("bad ServerHello")
            t = b[o] << 8 | b[o + 1]
            el = b[o + 2] << 8 | b[o + 3]
            o += 4
            if o + el > ln:
                raise DTLSError("bad ServerHello")
            if t == 0xFF01 and (el != 1 or b[o]):
                raise DTLSError("bad ServerHello")  # renegotiation_info must be empty (RFC 5746 3.4)
            if t == 0x17:
                if el or not self._ems_offer:
                    raise DTLSError("bad ServerHello")
                self.ems = True
            o += el  # any other extension is ignored

    def _second_flight(self):
        # ClientKeyExchange(psk_identity), ChangeCipherSpec, Finished (epoch 1).
        idn = self._id
        cke = _msg(_CKE, self._mseq, _u16(len(idn)) + idn)
        self._tr += cke
        h = sha256(self._tr).digest()  # session hash (RFC 7627) = client Finished's hash
        ms = master_secret(self._psk, self._cr, self._sr, h if self.ems else None)
        cw, sw, civ, siv = key_block(ms, self._cr, self._sr)
        self._rl.set_keys(cw, sw, civ, siv)
        self._ms = ms
        fin = _msg(_FIN, self._mseq + 1, prf(ms, b"client finished", h, 12))
        self._mseq += 2
        self._tr += fin
        return self._new_flight([(0, HANDSHAKE, cke), (0, CCS, b"\x01"), (1, HANDSHAKE, fin)])

    def _on_finished(self, b):
        want = prf(self._ms, b"server finished", sha256(self._tr).digest(), 12)
        if not ct_eq(want, b):
            self.state = FAILED
            raise DTLSError("bad server Finished")
        # Done: keep only the record keys.
        self._tr = self._ms = self._flight = self._psk = None

    # -- application data ----------------------------------------------------------------------
    def send(self, data):
        """The protected record carrying `data` (one datagram)."""
        if self.state != OPEN:
            raise DTLSError("not connected")
        return self._rl.seal(APP_DATA, data, 1)

    def close(self):
        """The close_notify alert to send (or None if there is no session to close)."""
        if self.state != OPEN:
            self.state = CLOSED
            return None
        self.state = CLOSED
        return self._rl.seal(ALERT, b"\x01\x00", 1)
