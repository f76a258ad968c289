"""The DTLS 1.2 record layer for TLS_PSK_WITH_AES_128_CCM_8 (RFC 6347 section 4.1, RFC 6655).

`seal_into` frames one record in a caller's buffer (epoch 0 in clear, epoch 1 encrypted in place
under AES-128-CCM_8 with the nonce and AAD of RFC 5246 section 6.2.3.3, built in preallocated
buffers); `seal` is the same into a new buffer. `open(d, o)` reads the record at d[o:] and
returns the next offset (-1 at the end), leaving typ/body/s/e (the record's type and its
plaintext body[s:e]: epoch 0 points into d, epoch 1 is a new buffer; typ 0 = dropped). Reading
one record at a time lets a record be decrypted only once the records before it (a
ChangeCipherSpec) have been handled. Epoch 1 has a 64-record replay window (RFC 6347 section
4.1.2.6) kept as a 64-slot ring: checked before the tag, updated only after the tag verifies.
Bad, stale or foreign-epoch records are dropped silently. It knows nothing of handshake
messages (dtls.py) and does no I/O.
"""

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from struct import pack_into
from janua import DTLSError
from janua.ccm import CCM8

CCS = const(20)
ALERT = const(21)
HANDSHAKE = const(22)
APP_DATA = const(23)


class RecordLayer:
    def __init__(self):
        self._ws = [0, 0]  # next write sequence number per epoch; never reused
        self.read_epoch = 0
        self._top = -1  # highest epoch-1 sequence number accepted so far
        self._win = bytearray(64)  # slot n & 63 set: n (top-63 <= n <= top) was accepted
        self._aad = bytearray(13)
        self._wn = bytearray(12)  # nonces: IV(4) || seq8(8)
        self._rn = bytearray(12)

    def set_keys(self, kb):
        """From the key block: client_write_key | server_write_key | client IV | server IV."""
        self._wc = CCM8(kb[0:16])
        self._rc = CCM8(kb[16:32])
        for i in range(4):
            self._wn[i] = kb[32 + i]
            self._rn[i] = kb[36 + i]

    def seal_into(self, b, o, typ, n, epoch):
        """Frame the record at b[o:] around its body: b[o+13:o+13+n] (epoch 0) or
        b[o+21:o+21+n] (epoch 1, 29 bytes of room). Returns the record's end."""
        seq = self._ws[epoch]
        if seq >> 48:
            raise DTLSError("sequence numbers exhausted")  # never wrap (RFC 6347 4.1)
        self._ws[epoch] = seq + 1
        pack_into(">BHHHIH", b, o, typ, 0xFEFD, epoch, seq >> 32, seq & 0xFFFFFFFF,
                  n + 16 if epoch else n)
        if not epoch:
            return o + 13 + n
        for i in range(8):
            b[o + 13 + i] = b[o + 3 + i]  # nonce_explicit = epoch || seq
        self._wc.seal(self._wn, self._na(self._wn, b, o + 13, typ, n), b, o + 21, n)
        return o + 29 + n

    def seal(self, typ, body, epoch):
        """One record (a new bytearray)."""
        n = len(body)
        h = 21 if epoch else 13
        b = bytearray(n + h + (8 if epoch else 0))
        b[h:h + n] = body
        self.seal_into(b, 0, typ, n, epoch)
        return b

    def open(self, d, o):
        n = len(d)
        if n - o < 13:
            return -1
        self.typ = typ = d[o]
        ver = d[o + 1] << 8 | d[o + 2]
        ep = d[o + 3] << 8 | d[o + 4]
        ln = d[o + 11] << 8 | d[o + 12]
        s = o + 13
        e = s + ln
        if e > n:
            return -1  # a record never spans datagrams: drop the truncated tail
        self.body = d
        self.s = s
        self.e = e
        if (ver != 0xFEFD and ver != 0xFEFF) or ep != self.read_epoch:
            self.typ = 0
        elif ep:
            self.typ = 0
            seq = 0
            for i in range(5, 11):
                seq = seq << 8 | d[o + i]
            if ln < 16 or not self._fresh(seq):
                return e
            pt = bytearray(ln - 16)
            if self._rc.open(self._rn, self._na(self._rn, d, s, typ, ln - 16), d, s + 8, ln - 16, pt):
                self._mark(seq)
                self.typ = typ
                self.body = pt
                self.s = 0
                self.e = ln - 16
            # else tampered or forged: silently dropped (RFC 6347 4.1.2.7)
        return e

    def _na(self, nonce, src, so, typ, n):
        # nonce = IV || seq8 and aad = seq8 || type || fe fd || uint16(n), seq8 = src[so:so+8].
        a = self._aad
        for i in range(8):
            a[i] = nonce[4 + i] = src[so + i]
        a[8] = typ
        a[9] = 0xFE
        a[10] = 0xFD
        a[11] = n >> 8
        a[12] = n & 0xFF
        return a

    def _fresh(self, n):
        d = self._top - n
        return d < 0 or (d < 64 and not self._win[n & 63])

    def _mark(self, n):
        w = self._win
        t = self._top
        if n > t:
            for i in range(max(t + 1, n - 63), n):
                w[i & 63] = 0
            self._top = n
        w[n & 63] = 1
