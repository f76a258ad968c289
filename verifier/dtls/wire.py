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
    while off < n:
        if n - off < 13:
            raise DTLSError("truncated record header")
        ctype, version, epoch, seq, length = RECORD_HEADER.unpack_from(datagram, off)
        if version not in (DTLS_1_2, DTLS_1_0) or length > MAX_RECORD or off + 13 + length > n:
            raise DTLSError("bad record header")
        out.append(Record(ctype, version, epoch, int.from_bytes(seq, "big"), datagram[off + 3:off + 11],
                          datagram[off + 13:off + 13 + length]))
        off += 13 + length
    return out


def encode_record(ctype, epoch, seq, fragment, version=DTLS_1_2):
    return RECORD_HEADER.pack(ctype, version, epoch, seq.to_bytes(6, "big"), len(fragment)) + fragment


def seq8(epoch, seq):
    return epoch.to_bytes(2, "big") + seq.to_bytes(6, "big")


def decode_handshakes(fragment):
    """The handshake messages of one record; `raw` is the message as it enters the transcript."""
    out, off, n = [], 0, len(fragment)
    while off < n:
        if n - off < HANDSHAKE_HEADER_LEN:
            raise DTLSError("truncated handshake header", DECODE_ERROR)
        msg_type = fragment[off]
        length = int.from_bytes(fragment[off + 1:off + 4], "big")
        msg_seq = int.from_bytes(fragment[off + 4:off + 6], "big")
        frag_off = int.from_bytes(fragment[off + 6:off + 9], "big")
        frag_len = int.from_bytes(fragment[off + 9:off + 12], "big")
        if frag_off != 0 or frag_len != length:
            raise DTLSError("fragmented handshake message (not supported)", HANDSHAKE_FAILURE)
        end = off + HANDSHAKE_HEADER_LEN + length
        if end > n:
            raise DTLSError("handshake message overruns its record", DECODE_ERROR)
        out.append(HandshakeMessage(msg_type, msg_seq, fragment[off + 12:end], fragment[off:end]))
        off = end
    return out


def encode_handshake(msg_type, msg_seq, body):
    n = len(body).to_bytes(3, "big")
    return bytes((msg_type,)) + n + msg_seq.to_bytes(2, "big") + b"\x00\x00\x00" + n + body


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
    r = _Reader(body)
    version = r.take(2)
    random = r.take(32)
    session_id = r.vec(1)
    start_cookie = r.i
    cookie = r.vec(1)
    end_cookie = r.i
    suites_raw = r.vec(2)
    compressions = r.vec(1)
    if len(session_id) > 32 or len(cookie) > 255 or len(suites_raw) % 2 or not suites_raw or not compressions:
        raise DTLSError("malformed ClientHello", DECODE_ERROR)
    cookie_input = body[:start_cookie] + body[end_cookie:r.i]
    extensions = {}
    if r.left():
        ext = _Reader(r.vec(2))
        while ext.left():
            etype = int.from_bytes(ext.take(2), "big")
            extensions[etype] = ext.vec(2)
    if r.left():
        raise DTLSError("trailing bytes after ClientHello", DECODE_ERROR)
    suites = [int.from_bytes(suites_raw[i:i + 2], "big") for i in range(0, len(suites_raw), 2)]
    return ClientHello(version, random, session_id, cookie, suites, compressions, extensions, cookie_input)


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
