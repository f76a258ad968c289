"""DTLS 1.2 wire codecs (RFC 6347 §4.1, §4.2.1, §4.2.2; RFC 5246 §7.4; RFC 4279 §2): records, handshake
headers, ClientHello, the server's messages, alerts. Pure functions over bytes; every parser checks
lengths and raises DTLSError (never asserts).

Deliberately not here: fragment reassembly (a fragmented handshake message is rejected) and any
message a PSK server never needs (certificates, CertificateRequest, NewSessionTicket).
"""

import collections
import struct

from verifier.dtls.crypto import DTLSError

CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA = 20, 21, 22, 23
CLIENT_HELLO, SERVER_HELLO, HELLO_VERIFY_REQUEST = 1, 2, 3
SERVER_HELLO_DONE, CLIENT_KEY_EXCHANGE, FINISHED = 14, 16, 20
DTLS_1_2, DTLS_1_0 = b"\xfe\xfd", b"\xfe\xff"

# alert descriptions (RFC 5246 §7.2, RFC 4279 §2)
CLOSE_NOTIFY, UNEXPECTED_MESSAGE, HANDSHAKE_FAILURE, ILLEGAL_PARAMETER = 0, 10, 40, 47
ACCESS_DENIED, DECODE_ERROR, DECRYPT_ERROR, PROTOCOL_VERSION, INTERNAL_ERROR = 49, 50, 51, 70, 80
UNKNOWN_PSK_IDENTITY = 115
WARNING, FATAL = 1, 2

EXT_EXTENDED_MASTER_SECRET = 0x0017      # RFC 7627 §5.1
EXT_RENEGOTIATION_INFO = 0xFF01          # RFC 5746 §3.2
EMPTY_RENEGOTIATION_INFO_SCSV = 0x00FF   # RFC 5746 §3.3

RECORD_HEADER = struct.Struct(">B2sH6sH")
HANDSHAKE_HEADER_LEN = 12
MAX_RECORD = 16384 + 2048                # RFC 6347 §4.1: plaintext 2^14 plus expansion
MAX_IDENTITY = 128                       # RFC 4279 §5.3 allows 2^16-1; ours are ~40 bytes

Record = collections.namedtuple("Record", "type version epoch seq seq8 fragment")
HandshakeMessage = collections.namedtuple("HandshakeMessage", "msg_type msg_seq body raw")
ClientHello = collections.namedtuple(
    "ClientHello", "version random session_id cookie suites compressions extensions cookie_input")


def decode_records(datagram):
    """All records of a datagram (no record may span datagrams, §4.1.1)."""
    out, off, n = [], 0, len(datagram)
    unpack = _RECORD_HEADER_SEQ.unpack_from
    while off < n:
        if n - off < 13:
            raise DTLSError("truncated record header")
        ctype, version, epoch, seq_hi, seq_lo, length = unpack(datagram, off)
        end = off + 13 + length
        if (version != 0xFEFD and version != 0xFEFF) or length > MAX_RECORD or end > n:
            raise DTLSError("bad record header")
        out.append(Record(ctype, datagram[off + 1:off + 3], epoch, (seq_hi << 32) | seq_lo, datagram[off + 3:off + 11],
                          datagram[off + 13:end]))
        off = end
    return out


_RECORD_HEADER_SEQ = struct.Struct(">BHHHIH")     # type, version, epoch, sequence number (48 bits), length


def encode_record(ctype, epoch, seq, fragment, version=DTLS_1_2):
    v = 0xFEFD if version == DTLS_1_2 else int.from_bytes(version, "big")
    return _RECORD_HEADER_SEQ.pack(ctype, v, epoch, seq >> 32, seq & 0xFFFFFFFF, len(fragment)) + fragment


_SEQ8 = struct.Struct(">HHI")


def seq8(epoch, seq):
    return _SEQ8.pack(epoch, seq >> 32, seq & 0xFFFFFFFF)


def decode_handshakes(fragment):
    """The handshake messages of one record; `raw` is the message as it enters the transcript."""
    out, off, n = [], 0, len(fragment)
    unpack = _HANDSHAKE_HEADER.unpack_from
    while off < n:
        if n - off < HANDSHAKE_HEADER_LEN:
            raise DTLSError("truncated handshake header", DECODE_ERROR)
        msg_type, len_hi, len_lo, msg_seq, off_hi, off_lo, flen_hi, flen_lo = unpack(fragment, off)
        if off_hi or off_lo or flen_hi != len_hi or flen_lo != len_lo:
            raise DTLSError("fragmented handshake message (not supported)", HANDSHAKE_FAILURE)
        end = off + HANDSHAKE_HEADER_LEN + ((len_hi << 16) | len_lo)
        if end > n:
            raise DTLSError("handshake message overruns its record", DECODE_ERROR)
        out.append(HandshakeMessage(msg_type, msg_seq, fragment[off + 12:end], fragment[off:end]))
        off = end
    return out


_HANDSHAKE_HEADER = struct.Struct(">BBHHBHBH")     # type, length (24 bits), message_seq, offset, fragment length


def encode_handshake(msg_type, msg_seq, body):
    n = len(body)
    return _HANDSHAKE_HEADER.pack(msg_type, n >> 16, n & 0xFFFF, msg_seq, 0, 0, n >> 16, n & 0xFFFF) + body


class _Reader:
    __slots__ = ("b", "i")

    def __init__(self, b):
        self.b, self.i = b, 0

    def take(self, n):
        if self.i + n > len(self.b):
            raise DTLSError("truncated message", DECODE_ERROR)
        v = self.b[self.i:self.i + n]
        self.i += n
        return v

    def vec(self, len_bytes):
        return self.take(int.from_bytes(self.take(len_bytes), "big"))

    def left(self):
        return len(self.b) - self.i


def decode_client_hello(body):
    """Parse a ClientHello body (RFC 6347 §4.2.1). `cookie_input` is every field up to the compression
    methods with the cookie left out: what the stateless cookie binds (a retried hello repeats them)."""
    n = len(body)
    if n < 39:                                   # version, random, and the three length prefixes
        raise DTLSError("truncated message", DECODE_ERROR)
    i = 35 + body[34]                            # past version (2), random (32), session_id
    if i >= n:
        raise DTLSError("truncated message", DECODE_ERROR)
    start_cookie = i
    end_cookie = i + 1 + body[i]
    if end_cookie + 2 > n:
        raise DTLSError("truncated message", DECODE_ERROR)
    n_suites = (body[end_cookie] << 8) | body[end_cookie + 1]
    i = end_cookie + 2 + n_suites
    if i >= n:
        raise DTLSError("truncated message", DECODE_ERROR)
    end = i + 1 + body[i]
    if end > n:
        raise DTLSError("truncated message", DECODE_ERROR)
    if body[34] > 32 or n_suites % 2 or not n_suites or end == i + 1:
        raise DTLSError("malformed ClientHello", DECODE_ERROR)
    compressions = body[i + 1:end]
    cookie_input = body[:start_cookie] + body[end_cookie:end]
    extensions = {}
    if end < n:
        if end + 2 > n:
            raise DTLSError("truncated message", DECODE_ERROR)
        ext_end = end + 2 + ((body[end] << 8) | body[end + 1])
        if ext_end > n:
            raise DTLSError("truncated message", DECODE_ERROR)
        j = end + 2
        while j < ext_end:
            if j + 4 > ext_end:
                raise DTLSError("truncated message", DECODE_ERROR)
            k = j + 4 + ((body[j + 2] << 8) | body[j + 3])
            if k > ext_end:
                raise DTLSError("truncated message", DECODE_ERROR)
            extensions[(body[j] << 8) | body[j + 1]] = body[j + 4:k]
            j = k
        if ext_end < n:
            raise DTLSError("trailing bytes after ClientHello", DECODE_ERROR)
    suites = list(_SUITE_LIST.iter_unpack(body[end_cookie + 2:end_cookie + 2 + n_suites]))
    return ClientHello(body[:2], body[2:34], body[35:35 + body[34]], body[start_cookie + 1:end_cookie],
                       [s[0] for s in suites], compressions, extensions, cookie_input)


_SUITE_LIST = struct.Struct(">H")


def decode_client_key_exchange(body):
    """The PSK identity of a ClientKeyExchange (RFC 4279 §2)."""
    r = _Reader(body)
    identity = r.vec(2)
    if r.left() or not identity or len(identity) > MAX_IDENTITY:
        raise DTLSError("malformed ClientKeyExchange", DECODE_ERROR)
    return identity


def encode_hello_verify_request(cookie):
    return DTLS_1_0 + bytes((len(cookie),)) + cookie      # server_version fe ff (§4.2.1)


def encode_server_hello(random, suite, extensions):
    """`extensions`: a list of (type, data)."""
    ext = b"".join(t.to_bytes(2, "big") + len(d).to_bytes(2, "big") + d for t, d in extensions)
    body = DTLS_1_2 + random + b"\x00" + suite.to_bytes(2, "big") + b"\x00"
    return body + (len(ext).to_bytes(2, "big") + ext if extensions else b"")


def encode_alert(level, description):
    return bytes((level, description))
