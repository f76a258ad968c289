"""A minimal DTLS 1.2 PSK client for driving the sans-IO DTLSServer in-process (negative tests: floods,
replays, tampering, duplicates). Built on the verifier's own codecs, so it proves nothing about
interoperability: the interop tests use OpenSSL, Mbed TLS and MicroPython's mbedTLS for that."""

import os

from verifier.dtls import wire
from verifier.dtls.crypto import RecordCipher, key_block, master_secret, verify_data
from verifier.dtls.wire import CHANGE_CIPHER_SPEC, HANDSHAKE


def client_hello_body(random, cookie=b"", suites=(0xC0A8, 0x00FF), extensions=b""):
    s = b"".join(x.to_bytes(2, "big") for x in suites)
    body = b"\xfe\xfd" + random + b"\x00" + bytes((len(cookie),)) + cookie + len(s).to_bytes(2, "big") + s + b"\x01\x00"
    return body + (len(extensions).to_bytes(2, "big") + extensions if extensions else b"")


def client_hello(random, cookie=b"", msg_seq=0, rec_seq=0, **kw):
    msg = wire.encode_handshake(wire.CLIENT_HELLO, msg_seq, client_hello_body(random, cookie, **kw))
    return wire.encode_record(HANDSHAKE, 0, rec_seq, msg, wire.DTLS_1_0)


class RawClient:
    def __init__(self, server, addr, identity, psk, now=0.0, suite=0xC0A8):
        self.server, self.addr, self.identity, self.psk, self.now, self.suite = server, addr, identity, psk, now, suite
        self.random = os.urandom(32)
        self.rec_seq = [0, 0]
        self.transcript = b""
        self.events = []

    def send(self, datagram):
        replies, events = self.server.receive(datagram, self.addr, self.now)
        self.events += events
        return replies

    def _rec(self, ctype, epoch, payload):
        seq = self.rec_seq[epoch]
        self.rec_seq[epoch] += 1
        frag = self.write.seal(wire.seq8(epoch, seq), ctype, payload) if epoch else payload
        return wire.encode_record(ctype, epoch, seq, frag)

    def hello(self):
        """F1 and F3: returns the server's F4 datagram."""
        (hvr,) = self.send(client_hello(self.random, suites=(self.suite, 0x00FF), rec_seq=self._next0()))
        rec = wire.decode_records(hvr)[0]
        cookie = wire.decode_handshakes(rec.fragment)[0].body[3:]
        ch = wire.encode_handshake(wire.CLIENT_HELLO, 1, client_hello_body(self.random, cookie, suites=(self.suite, 0x00FF)))
        self.ch2 = wire.encode_record(HANDSHAKE, 0, self._next0(), ch)
        (f4,) = self.send(self.ch2)
        msgs = [m for r in wire.decode_records(f4) for m in wire.decode_handshakes(r.fragment)]
        self.server_random = msgs[0].body[2:34]
        self.transcript = ch + b"".join(m.raw for m in msgs)
        return f4

    def _next0(self):
        self.rec_seq[0] += 1
        return self.rec_seq[0] - 1

    def finish(self, psk=None):
        """F5 (with `psk`, default the right one): returns the server's replies."""
        ident = self.identity
        cke = wire.encode_handshake(wire.CLIENT_KEY_EXCHANGE, 2, len(ident).to_bytes(2, "big") + ident)
        self.transcript += cke
        master = master_secret(psk or self.psk, self.random, self.server_random)
        ckey, skey, civ, siv = key_block(master, self.random, self.server_random)
        self.write, self.read = RecordCipher(self.suite, ckey, civ), RecordCipher(self.suite, skey, siv)
        fin = wire.encode_handshake(wire.FINISHED, 3, verify_data(master, b"client finished", self.transcript))
        self.f5 = [(HANDSHAKE, 0, cke), (CHANGE_CIPHER_SPEC, 0, b"\x01"), (HANDSHAKE, 1, fin)]
        return self.send(self.flight5())

    def flight5(self):
        """F5 built again, with fresh record numbers (a retransmission)."""
        return b"".join(self._rec(*item) for item in self.f5)

    def app_record(self, data):
        return self._rec(wire.APPLICATION_DATA, 1, data)

    def open(self, datagram):
        """Application data in a server datagram."""
        out = []
        for rec in wire.decode_records(datagram):
            if rec.epoch == 1 and rec.type == wire.APPLICATION_DATA:
                out.append(self.read.open(rec.seq8, rec.type, rec.fragment))
        return out
