"""The DTLS 1.2 record layer for TLS_PSK_WITH_AES_128_CCM_8 (RFC 6347 section 4.1, RFC 6655).

`seal` frames one record (epoch 0 in clear, epoch 1 under AES-128-CCM_8 with the nonce and AAD of
RFC 5246 section 6.2.3.3); `records` walks the records of one datagram lazily, so that a record
is only decrypted once the records before it (a ChangeCipherSpec) have been handled. Epoch 1 has
a 64-record sliding replay window (RFC 6347 section 4.1.2.6): checked before the tag, updated
only after the tag verifies. Bad, stale or foreign-epoch records are dropped silently.
It knows nothing of handshake messages (dtls.py) and does no I/O.
"""

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from struct import pack, unpack_from
from janua import DTLSError
from janua.ccm import CCM8

CCS = const(20)
ALERT = const(21)
HANDSHAKE = const(22)
APP_DATA = const(23)

_HDR = const(13)
_OVERHEAD = const(16)  # explicit nonce 8 + tag 8
_WINDOW = const(64)
_MASK = (1 << 64) - 1
_MAX_SEQ = (1 << 48) - 1


class RecordLayer:
    def __init__(self):
        self._ws = [0, 0]  # next write sequence number per epoch; never reused
        self.read_epoch = 0
        self._wc = self._rc = None
        self._top = -1  # highest epoch-1 sequence number accepted so far
        self._bits = 0  # bit d set: sequence number top - d was accepted

    def set_keys(self, write_key, read_key, write_iv, read_iv):
        self._wc = CCM8(write_key)
        self._rc = CCM8(read_key)
        self._wiv = write_iv
        self._riv = read_iv

    def seal(self, typ, body, epoch):
        """One record: 13-byte header, then the body (epoch 0) or nonce_explicit || ct || tag."""
        seq = self._ws[epoch]
        if seq > _MAX_SEQ:
            raise DTLSError("sequence numbers exhausted")  # never wrap (RFC 6347 4.1)
        self._ws[epoch] = seq + 1
        n = len(body)
        h = pack(">BHHHIH", typ, 0xFEFD, epoch, seq >> 32, seq & 0xFFFFFFFF,
                 n + _OVERHEAD if epoch else n)
        if not epoch:
            return h + body
        s8 = h[3:11]
        aad = s8 + h[0:3] + pack(">H", n)
        return h + s8 + self._wc.encrypt(self._wiv + s8, aad, body)

    def records(self, d):
        """Yield (type, plaintext) for each acceptable record of datagram d, in order."""
        o = 0
        n = len(d)
        while n - o >= _HDR:
            typ, ver, ep, hi, lo, ln = unpack_from(">BHHHIH", d, o)
            h = o
            s = o + _HDR
            o = s + ln
            if o > n:
                return  # a record never spans datagrams: drop the truncated tail
            if (ver != 0xFEFD and ver != 0xFEFF) or ep != self.read_epoch:
                continue
            if not ep:
                yield typ, d[s:o]
                continue
            seq = (hi << 32) | lo
            if ln < _OVERHEAD or not self._fresh(seq):
                continue
            aad = d[h + 3:h + 11] + d[h:h + 3] + pack(">H", ln - _OVERHEAD)
            pt = self._rc.decrypt(self._riv + d[s:s + 8], aad, d[s + 8:o])
            if pt is None:
                continue  # tampered or forged: silently dropped (RFC 6347 4.1.2.7)
            self._mark(seq)
            yield typ, pt

    def _fresh(self, n):
        d = self._top - n
        return d < 0 or (d < _WINDOW and not (self._bits >> d) & 1)

    def _mark(self, n):
        d = n - self._top
        if d >= _WINDOW:
            self._bits = 1
        elif d > 0:
            self._bits = ((self._bits << d) | 1) & _MASK
        else:
            self._bits |= 1 << -d
        if d > 0:
            self._top = n
