"""A sans-IO DTLS 1.2 PSK client, TLS_PSK_WITH_AES_128_CCM_8 only (PROTOCOLS.md section 1).

Bytes in, bytes out: `start()` gives the first datagram, `receive(datagram)` consumes one and
returns the datagram to send back (a new flight, or the last flight again when the server resent
its previous one) or None, `retransmit()` rebuilds the last flight with fresh record sequence
numbers for the driver's timer, `send(data)` and `close()` give protected records. Received
application data is queued in `inbox`. The handshake is the transition table `_NEXT`; a message
the table does not expect raises DTLSError, as does a fatal alert or a server Finished that does
not verify (compared in constant time). Offered: C0A8 only and the extended master secret
(RFC 7627, used if the server echoes it) and the renegotiation SCSV 00FF (RFC 5746 section 3.4
requires the signal in every ClientHello; ri=False drops it to save 9 bytes on the wire, for
servers known not to need it: we never renegotiate, RFC 7925 section 17). Handled: cookie exchange
(every HelloVerifyRequest is answered with the same random), an optional identity hint.
Memory: the last flight is one datagram buffer, patched in place on resend (new sequence
numbers, the Finished re-encrypted); the transcript is two running SHA-256 objects (one ends at
ClientKeyExchange: the session hash and the client Finished; one goes on to the server
Finished), never a byte string; nothing is sliced out of received datagrams but the server random.
Not done: fragmented handshake messages (dropped; none of the peers fragment a PSK handshake),
renegotiation, session resumption, the server side. The driver (dtls_udp.py) owns time and sockets.
"""

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from hashlib import sha256
from struct import pack_into
from janua import DTLSError
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

# (state << 9 | event) -> next state
_NEXT = {
    HELLO << 9 | _HVR: HELLO,
    HELLO << 9 | _SH: _SERVER_HELLO,
    _SERVER_HELLO << 9 | _SKE: _HINT,
    _SERVER_HELLO << 9 | _SHD: _WAIT_CCS,
    _HINT << 9 | _SHD: _WAIT_CCS,
    _WAIT_CCS << 9 | _EV_CCS: _WAIT_FIN,
    _WAIT_FIN << 9 | _FIN: OPEN,
}

_MAX_MSG = const(512)  # no PSK handshake message comes near this
_FATAL = const(2)
_CLOSE_NOTIFY = const(0)


def _hs(b, o, typ, seq, n):
    # The 12-byte header of a whole (unfragmented) handshake message of n bytes, at b[o:].
    pack_into(">BBHHBHBH", b, o, typ, 0, n, seq, 0, 0, 0, n)


class DTLSClient:
    """One DTLS-PSK session. `identity` and `psk` are bytes; `rand(n)` gives n random bytes."""

    def __init__(self, identity, psk, rand=None, ems=True, ri=True):
        if rand is None:
            from os import urandom as rand
        if not 0 < len(psk) <= 64 or len(identity) > 128:
            raise DTLSError("psk/identity length")
        self._id = identity
        self._psk = psk
        self._cr = rand(32)
        self._ems_offer = ems
        self._ri = ri
        self.ems = False
        self.hint = None
        self.state = HELLO
        self.alert = None  # description of the last alert received
        self.flights = 0  # counts new flights: the driver resets its timer when it changes
        self.inbox = []
        self._mseq = 0  # our next handshake message_seq
        self._rseq = 0  # the server's next expected message_seq
        self._rl = RecordLayer()

    # -- flights -------------------------------------------------------------------------------
    def start(self):
        return self._hello(b"", 0, 0)

    def _hello(self, src, so, cl):
        # A ClientHello record carrying the cookie src[so:so+cl], as the new flight.
        x = (6 if self._ems_offer else 0) + (2 if self._ri else 0)
        n = 42 + cl + x
        f = bytearray(25 + n)
        f[0] = HANDSHAKE
        f[11] = (n + 12) >> 8
        f[12] = (n + 12) & 0xFF
        _hs(f, 13, 1, self._mseq, n)
        self._mseq += 1
        f[25] = 0xFE
        f[26] = 0xFD
        f[27:59] = self._cr
        f[60] = cl
        for i in range(cl):
            f[61 + i] = src[so + i]
        o = 61 + cl
        f[o + 1] = 4 if self._ri else 2
        f[o + 2] = 0xC0
        f[o + 3] = 0xA8
        if self._ri:
            o += 2
            f[o + 3] = 0xFF
        f[o + 4] = 1  # one compression method: null
        if self._ems_offer:
            f[o + 7] = 4
            f[o + 9] = 0x17
        return self._new_flight(f)

    def _new_flight(self, f):
        self._fl = f
        self.flights += 1
        return self.retransmit()

    def retransmit(self):
        """The whole last flight again, as new records (fresh sequence numbers, re-encrypted)."""
        if self.state >= OPEN:
            return None
        f = self._fl
        o = 0
        while o < len(f):
            n = f[o + 11] << 8 | f[o + 12]
            if f[o + 4]:  # the Finished: encrypted again under its new sequence number
                f[o + 21:o + 45] = self._fin
                o = self._rl.seal_into(f, o, f[o], 24, 1)
            else:
                o = self._rl.seal_into(f, o, f[o], n, 0)
        return f

    # -- receive -------------------------------------------------------------------------------
    def receive(self, d):
        """Consume one datagram (bytes); the datagram to send in answer, or None."""
        self._out = None
        self._dup = False
        if self.state >= CLOSED:
            return None
        rl = self._rl
        o = 0
        while True:
            o = rl.open(d, o)
            if o < 0:
                break
            typ = rl.typ
            b = rl.body
            p = rl.s
            e = rl.e
            if typ == HANDSHAKE:
                while e - p >= 12 and self.state < OPEN:
                    p = self._handshake(b, p, e)
                    if p < 0:
                        break  # malformed or fragmented: drop the rest of the record
            elif typ == CCS:
                if e - p == 1 and b[p] == 1 and self.state == _WAIT_CCS:
                    self._step(_EV_CCS)
                    rl.read_epoch = 1
            elif typ == ALERT and e - p == 2:
                self._alert(b[p], b[p + 1])
            elif typ == APP_DATA and self.state == OPEN:
                self.inbox.append(b)  # epoch 1: b is the record's own plaintext buffer
        out = self._out
        if out is None and self._dup:
            out = self.retransmit()  # once per datagram, however many duplicates it held
        self._out = None
        return out

    def _alert(self, level, desc):
        self.alert = desc
        if desc == _CLOSE_NOTIFY:
            self.state = CLOSED
        elif level == _FATAL:
            self.state = FAILED
            raise DTLSError("fatal alert %d" % desc)

    def _step(self, ev):
        nxt = _NEXT.get(self.state << 9 | ev)
        if nxt is None:
            self.state = FAILED
            raise DTLSError("unexpected msg %d in state %d" % (ev, self.state))
        self.state = nxt

    def _hash(self, b, o, end):
        m = memoryview(b)[o:end]
        self._h1.update(m)
        self._h2.update(m)

    def _handshake(self, b, o, lim):
        # One message at b[o:lim]. Returns the next offset, or -1 to drop the rest.
        typ = b[o]
        n = (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]
        seq = (b[o + 4] << 8) | b[o + 5]
        if b[o + 6] or b[o + 7] or b[o + 8] or b[o + 9] != b[o + 1] or b[o + 10] != b[o + 2] \
                or b[o + 11] != b[o + 3] or n > _MAX_MSG or o + 12 + n > lim:
            return -1
        end = o + 12 + n
        o += 12
        if self.state == HELLO:
            self._rseq = seq  # the server's numbering starts at its first answer
        if seq < self._rseq:
            # The server resent its previous flight: ours was lost (receive() resends it).
            self._dup = True
            return end
        if seq > self._rseq:
            return end  # from the future (a lost message before it): drop, wait for resend
        self._rseq = seq + 1
        self._step(typ)
        if typ == _HVR:
            # server_version (fe ff or fe fd), cookie<0..255>. Answer with the same random.
            if n < 3 or b[o + 2] != n - 3:
                raise DTLSError("bad HelloVerifyRequest")
            self._out = self._hello(b, o + 3, n - 3)
        elif typ == _SH:
            # The transcript starts at the ClientHello with the cookie (RFC 6347 4.2.1).
            m = memoryview(self._fl)[13:]
            self._h1 = sha256(m)
            self._h2 = sha256(m)
            self._hash(b, o - 12, end)
            self._on_server_hello(b, o, end)
        elif typ == _SKE:
            self._hash(b, o - 12, end)
            if n < 2 or (b[o] << 8 | b[o + 1]) != n - 2:
                raise DTLSError("bad ServerKeyExchange")
            self.hint = bytes(b[o + 2:end])
        elif typ == _SHD:
            self._hash(b, o - 12, end)
            if n:
                raise DTLSError("bad ServerHelloDone")
            self._out = self._second_flight()
        elif typ == _FIN:
            self._on_finished(b, o, n)
        return end

    def _on_server_hello(self, b, o, ln):
        if ln - o < 38 or b[o] != 0xFE or b[o + 1] != 0xFD:
            raise DTLSError("bad ServerHello")
        self._sr = b[o + 2:o + 34]
        o += 35 + b[o + 34]
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
        # ClientKeyExchange(psk_identity), ChangeCipherSpec, Finished (epoch 1), one datagram.
        idn = self._id
        k = len(idn)
        f = bytearray(94 + k)
        f[0] = HANDSHAKE
        f[12] = k + 14
        _hs(f, 13, _CKE, self._mseq, k + 2)
        f[26] = k  # uint16 length (k <= 128)
        f[27:27 + k] = idn
        self._hash(f, 13, 27 + k)
        f[27 + k] = CCS
        f[39 + k] = f[40 + k] = 1
        f[41 + k] = HANDSHAKE
        f[45 + k] = 1  # epoch 1 (retransmit() seals it)
        h = self._h1.digest()  # session hash (RFC 7627) = the client Finished's hash
        cr = self._cr
        sr = self._sr
        ms = master_secret(self._psk, cr, sr, h if self.ems else None)
        self._rl.set_keys(key_block(ms, cr, sr))
        self._ms = ms
        fin = bytearray(24)
        _hs(fin, 0, _FIN, self._mseq + 1, 12)
        prf(ms, b"client finished", h, 12, fin, 12)
        self._mseq += 2
        self._h2.update(fin)
        self._fin = fin
        self._h1 = self._psk = None
        return self._new_flight(f)

    def _on_finished(self, b, o, n):
        want = prf(self._ms, b"server finished", self._h2.digest(), 12)
        r = n ^ 12
        for i in range(12):
            r |= want[i] ^ b[o + i] if i < n else 1  # constant time
        if r:
            self.state = FAILED
            raise DTLSError("bad server Finished")
        # Done: keep only the record keys.
        self._h2 = self._ms = self._fl = self._fin = None

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
