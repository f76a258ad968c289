"""The DTLS 1.2 PSK server as a sans-IO core (RFC 6347 §4.2; RFC 4279 §2; PSK with AES-128-CCM-8 or
AES-128-GCM-SHA256).

`DTLSServer.receive(datagram, addr, now)` returns `(replies, events)`: datagrams to send back to
`addr` and what happened (handshake done or refused, application data, close). `seal(addr, data)`
protects application data for an established session. No sockets, no clock, no randomness of its
own: the driver passes `now`, the constructor takes `rand` and a PSK `lookup(identity, addr, now)`
that returns a `PSKGrant` or None.

State: nothing exists for a client before it returns a valid cookie (HelloVerifyRequest is
stateless). After that, half-open handshakes are bounded per source host and in total (the oldest is
evicted) and expire; established sessions are bounded and expire when idle. The handshake follows
the table TRANSITIONS; a message the table does not expect is a protocol error.

Retransmission (RFC 6347 §4.2.4) has no server timer, and needs none in a PSK handshake, because the
client always speaks next: a lost HelloVerifyRequest (stateless, never resent by design) or ServerHello
flight makes the client resend its ClientHello, and a lost final flight (CCS, Finished) makes it resend
its Finished flight; either duplicate makes the server resend its last flight, with fresh record
numbers. A resent flight's ChangeCipherSpec is ignored once the first one has been taken.

Not done: fragment reassembly (rejected with an alert), renegotiation, session resumption.
"""

import collections
import hashlib
import hmac
import logging
import os

from verifier.dtls import wire
from verifier.dtls.crypto import (SUITES, CookieJar, DTLSError, HMACKey, RecordCipher, ReplayWindow, key_block,
                                  master_secret, prf)
from verifier.dtls.wire import (ALERT, APPLICATION_DATA, CHANGE_CIPHER_SPEC, CLIENT_HELLO, CLIENT_KEY_EXCHANGE,
                                FATAL, FINISHED, HANDSHAKE)

log = logging.getLogger("janua.verifier.dtls")

WAIT_CLIENT_KEY_EXCHANGE, WAIT_CHANGE_CIPHER_SPEC, WAIT_FINISHED, ESTABLISHED = (
    "wait_client_key_exchange", "wait_change_cipher_spec", "wait_finished", "established")
CCS_EVENT = "change_cipher_spec"

# (state, message) -> next state. A missing key is an unexpected message (fatal alert).
TRANSITIONS = {
    (WAIT_CLIENT_KEY_EXCHANGE, CLIENT_KEY_EXCHANGE): WAIT_CHANGE_CIPHER_SPEC,
    (WAIT_CHANGE_CIPHER_SPEC, CCS_EVENT): WAIT_FINISHED,
    (WAIT_FINISHED, FINISHED): ESTABLISHED,
}

Established = collections.namedtuple("Established", "addr identity grant suite")
Refused = collections.namedtuple("Refused", "addr identity grant reason")     # grant None: unknown identity
AppData = collections.namedtuple("AppData", "addr data")
Closed = collections.namedtuple("Closed", "addr reason")


class PSKGrant:
    """What a PSK lookup found: the key, an optional refusal (given only after the client has proved
    the key with its Finished), and opaque context for the layer above (e.g. the device)."""

    __slots__ = ("key", "refusal", "context")

    def __init__(self, key, refusal=None, context=None):
        self.key, self.refusal, self.context = key, refusal, context


class Connection:
    """Per-client state from the cookie-verified ClientHello on."""

    __slots__ = ("addr", "state", "suite", "client_random", "server_random", "ems", "transcript",
                 "next_receive_seq", "write_seq", "read_cipher", "write_cipher", "window", "master",
                 "identity", "grant", "last_flight", "created", "touched", "next_send_seq", "transcript_hash")

    def __init__(self, addr, now):
        self.addr = addr
        self.created = self.touched = now
        self.write_seq = [0, 0]
        self.read_cipher = self.write_cipher = self.master = self.identity = self.grant = None
        self.window = ReplayWindow()
        self.last_flight = ()


def _host(addr):
    return addr[0] if isinstance(addr, tuple) else addr


class DTLSServer:
    def __init__(self, lookup, now, rand=os.urandom, max_half_open=4096, max_half_open_per_host=16,
                 max_sessions=100_000, handshake_timeout_s=60.0, idle_timeout_s=3600.0, cookie_period_s=60.0):
        self._lookup = lookup
        self._rand = rand
        self._cookies = CookieJar(now, cookie_period_s, rand)
        self.max_half_open, self.max_half_open_per_host = max_half_open, max_half_open_per_host
        self.max_sessions = max_sessions
        self.handshake_timeout_s, self.idle_timeout_s = handshake_timeout_s, idle_timeout_s
        self._half_open = collections.OrderedDict()    # addr -> Connection, oldest first
        self._per_host = collections.Counter()         # host -> half-open handshakes
        self._sessions = collections.OrderedDict()     # addr -> Connection, least recently used first

    # introspection (tests, metrics)
    @property
    def half_open_count(self):
        return len(self._half_open)

    @property
    def session_count(self):
        return len(self._sessions)

    def session(self, addr):
        return self._sessions.get(addr)

    # the driver's entry points

    def receive(self, datagram, addr, now):
        """Process one datagram from `addr`; return (list of datagrams to send to addr, list of events)."""
        self.expire(now)
        out, events = [], []
        try:
            records = wire.decode_records(datagram)
        except DTLSError as e:
            log.debug("dtls %s: datagram dropped: %s", addr, e)
            return out, events
        ctx = _Datagram(addr, now, out, events)
        for rec in records:
            try:
                self._record(ctx, rec)
            except DTLSError as e:
                log.debug("dtls %s: %s", addr, e)
                alert = self._fail(addr, e.alert, rec, rec.epoch == 1) if e.alert is not None else b""
                if alert:
                    out.append(alert)
                    events.append(Closed(addr, str(e)))
                break
        return out, events

    def seal(self, addr, data):
        """One datagram carrying `data` as application data on addr's session (DTLSError if none)."""
        conn = self._sessions.get(addr)
        if conn is None:
            raise DTLSError("no session")
        return self._records(conn, ((APPLICATION_DATA, 1, data),))

    def close(self, addr):
        """End addr's session; return the close_notify datagram (or b"" if there was none)."""
        conn = self._sessions.pop(addr, None)
        if conn is None:
            return b""
        return self._records(conn, ((ALERT, 1, wire.encode_alert(wire.WARNING, wire.CLOSE_NOTIFY)),))

    def expire(self, now):
        """Drop half-open handshakes older than the handshake timeout and idle sessions."""
        while self._half_open:
            conn = next(iter(self._half_open.values()))
            if now - conn.created < self.handshake_timeout_s:
                break
            self._drop_half_open(conn.addr)
        while self._sessions:
            conn = next(iter(self._sessions.values()))
            if now - conn.touched < self.idle_timeout_s:
                break
            del self._sessions[conn.addr]

    # records

    def _record(self, ctx, rec):
        addr = ctx.addr
        conn = self._half_open.get(addr) or self._sessions.get(addr)
        if rec.epoch == 0:
            if rec.type == HANDSHAKE:
                for msg in wire.decode_handshakes(rec.fragment):
                    if msg.msg_type == CLIENT_HELLO:
                        self._client_hello(ctx, rec, msg, conn)
                        conn = self._half_open.get(addr) or self._sessions.get(addr)
                    elif conn is not None:
                        self._handshake(ctx, conn, msg)
            elif rec.type == CHANGE_CIPHER_SPEC and conn is not None:
                if rec.fragment != b"\x01":
                    raise DTLSError("bad ChangeCipherSpec", wire.DECODE_ERROR)
                if conn.state not in (WAIT_FINISHED, ESTABLISHED):   # a resent flight's CCS changes nothing
                    self._step(conn, CCS_EVENT)
            elif rec.type == ALERT and conn is not None and conn.state != ESTABLISHED:
                self._alert(ctx, conn, rec.fragment)   # plaintext alerts cannot end an established session
            return
        if rec.epoch != 1 or conn is None or conn.state not in (WAIT_FINISHED, ESTABLISHED):
            return                                   # no keys for it (yet): drop (RFC 6347 §4.1)
        if not conn.window.check(rec.seq):
            return                                   # replayed: drop silently (§4.1.2.6)
        try:
            plain = conn.read_cipher.open(rec.seq8, rec.type, rec.fragment)
        except DTLSError:
            if conn.state == WAIT_FINISHED and rec.type == HANDSHAKE:
                # the client's Finished under keys from another PSK: tell it, or it retries for minutes
                ctx.events.append(Refused(addr, conn.identity, conn.grant, "bad Finished (wrong key)"))
                raise DTLSError("client Finished does not decrypt", wire.DECRYPT_ERROR) from None
            return                                   # forged or damaged: drop silently (§4.1.2.7)
        conn.window.update(rec.seq)
        conn.touched = ctx.now
        if rec.type == HANDSHAKE:
            for msg in wire.decode_handshakes(plain):
                self._handshake(ctx, conn, msg)
        elif rec.type == APPLICATION_DATA:
            if conn.state == ESTABLISHED:            # before our Finished: drop (§4.2.4)
                self._sessions.move_to_end(conn.addr)
                ctx.events.append(AppData(addr, plain))
        elif rec.type == ALERT:
            self._alert(ctx, conn, plain)

    def _alert(self, ctx, conn, body):
        if len(body) != 2:
            raise DTLSError("malformed alert")
        if body[0] == FATAL or body[1] == wire.CLOSE_NOTIFY:
            self._forget(conn.addr)
            ctx.events.append(Closed(conn.addr, f"peer alert {body[1]}"))

    # the handshake

    def _client_hello(self, ctx, rec, msg, conn):
        addr, now = ctx.addr, ctx.now
        ch = wire.decode_client_hello(msg.body)
        if conn is not None and conn.client_random == ch.random and msg.msg_seq < conn.next_receive_seq:
            self._retransmit(ctx, conn)              # our ServerHello flight was lost
            return
        if not self._cookies.verify(addr, ch.cookie_input, ch.cookie, now):
            # stateless: nothing is stored for this client; the reply is smaller than the hello
            hvr = wire.encode_handshake(wire.HELLO_VERIFY_REQUEST, msg.msg_seq,
                                        wire.encode_hello_verify_request(self._cookies.make(addr, ch.cookie_input, now)))
            ctx.out.append(wire.encode_record(HANDSHAKE, 0, rec.seq, hvr, wire.DTLS_1_0))
            return
        if msg.msg_seq > 0xFFFF - 2:                 # our ServerHelloDone and Finished take the next two
            raise DTLSError("ClientHello message_seq leaves no room for the handshake", wire.ILLEGAL_PARAMETER)
        if int.from_bytes(ch.version, "big") > 0xFEFD:  # DTLS versions count down: fefd is 1.2
            raise DTLSError("client does not offer DTLS 1.2", wire.PROTOCOL_VERSION)
        suite = next((s for s in SUITES if s in ch.suites), None)
        if suite is None or 0 not in ch.compressions:
            raise DTLSError("no shared cipher suite or compression", wire.HANDSHAKE_FAILURE)
        reneg = ch.extensions.get(wire.EXT_RENEGOTIATION_INFO)
        if reneg is not None and reneg != b"\x00":
            raise DTLSError("renegotiation_info must be empty on an initial handshake", wire.HANDSHAKE_FAILURE)
        conn = self._admit(addr, now)
        conn.state = WAIT_CLIENT_KEY_EXCHANGE
        conn.suite = suite
        conn.client_random = ch.random
        conn.server_random = self._rand(32)
        conn.ems = wire.EXT_EXTENDED_MASTER_SECRET in ch.extensions
        conn.write_seq[0] = rec.seq                  # continue from the stateless reply's numbering
        conn.next_receive_seq = msg.msg_seq + 1
        conn.next_send_seq = msg.msg_seq + 2         # ServerHello copies the hello's message_seq
        ext = []
        if reneg is not None or wire.EMPTY_RENEGOTIATION_INFO_SCSV in ch.suites:
            ext.append((wire.EXT_RENEGOTIATION_INFO, b"\x00"))     # RFC 5746 §3.6
        if conn.ems:
            ext.append((wire.EXT_EXTENDED_MASTER_SECRET, b""))      # RFC 7627 §5.1
        sh = wire.encode_handshake(wire.SERVER_HELLO, msg.msg_seq, wire.encode_server_hello(conn.server_random, suite, ext))
        shd = wire.encode_handshake(wire.SERVER_HELLO_DONE, msg.msg_seq + 1, b"")
        conn.transcript = msg.raw + sh + shd         # the transcript starts at the hello with the cookie
        conn.last_flight = ((HANDSHAKE, 0, sh), (HANDSHAKE, 0, shd))
        ctx.out.append(self._records(conn, conn.last_flight))

    def _handshake(self, ctx, conn, msg):
        if msg.msg_seq < conn.next_receive_seq:
            self._retransmit(ctx, conn)              # the peer resent its previous flight
            return
        if msg.msg_seq > conn.next_receive_seq or conn.state == ESTABLISHED:
            return                                   # a future message: drop, the peer will resend
        self._step(conn, msg.msg_type)
        conn.next_receive_seq += 1
        if msg.msg_type == CLIENT_KEY_EXCHANGE:
            self._client_key_exchange(ctx, conn, msg)
        else:
            self._finished(ctx, conn, msg)

    def _step(self, conn, event):
        try:
            conn.state = TRANSITIONS[(conn.state, event)]
        except KeyError:
            raise DTLSError(f"unexpected {event} in {conn.state}", wire.UNEXPECTED_MESSAGE) from None

    def _client_key_exchange(self, ctx, conn, msg):
        identity = wire.decode_client_key_exchange(msg.body)
        conn.identity = identity
        grant = self._lookup(identity, ctx.addr, ctx.now)
        if grant is None:
            ctx.events.append(Refused(ctx.addr, identity, None, "unknown PSK identity"))
            raise DTLSError("unknown PSK identity", wire.UNKNOWN_PSK_IDENTITY)
        conn.grant = grant
        conn.transcript += msg.raw
        # the hash of the transcript so far is both the EMS session hash and the client Finished's input
        conn.transcript_hash = hashlib.sha256(conn.transcript).digest()
        master = master_secret(grant.key, conn.client_random, conn.server_random,
                               conn.transcript_hash if conn.ems else None)
        conn.master = HMACKey(master)                # keyed once for the key block and both Finished
        ckey, skey, civ, siv = key_block(conn.master, conn.client_random, conn.server_random)
        conn.read_cipher = RecordCipher(conn.suite, ckey, civ)
        conn.write_cipher = RecordCipher(conn.suite, skey, siv)

    def _finished(self, ctx, conn, msg):
        expected = prf(conn.master, b"client finished", conn.transcript_hash, 12)
        if len(msg.body) != 12 or not hmac.compare_digest(expected, msg.body):
            ctx.events.append(Refused(ctx.addr, conn.identity, conn.grant, "bad Finished (wrong key)"))
            raise DTLSError("client Finished does not verify", wire.DECRYPT_ERROR)
        if conn.grant.refusal:
            ctx.events.append(Refused(ctx.addr, conn.identity, conn.grant, conn.grant.refusal))
            raise DTLSError(conn.grant.refusal, wire.ACCESS_DENIED)
        conn.transcript += msg.raw
        fin = wire.encode_handshake(FINISHED, conn.next_send_seq,
                                    prf(conn.master, b"server finished", hashlib.sha256(conn.transcript).digest(), 12))
        conn.transcript = b""
        conn.last_flight = ((CHANGE_CIPHER_SPEC, 0, b"\x01"), (HANDSHAKE, 1, fin))
        ctx.out.append(self._records(conn, conn.last_flight))
        self._drop_half_open(conn.addr)
        self._sessions[conn.addr] = conn
        if len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)
        ctx.events.append(Established(conn.addr, conn.identity, conn.grant, conn.suite))

    def _retransmit(self, ctx, conn):
        if ctx.retransmitted:                        # one resend per datagram, however many dups it holds
            return
        ctx.retransmitted = True
        if conn.last_flight:
            ctx.out.append(self._records(conn, conn.last_flight))   # fresh record numbers (§4.2.2)

    # state bounds

    def _admit(self, addr, now):
        self._forget(addr)                           # a new handshake replaces whatever addr had
        host = _host(addr)
        if self._per_host[host] >= self.max_half_open_per_host:
            oldest = next(a for a in self._half_open if _host(a) == host)
            self._drop_half_open(oldest)
        if len(self._half_open) >= self.max_half_open:
            self._drop_half_open(next(iter(self._half_open)))
        conn = Connection(addr, now)
        self._half_open[addr] = conn
        self._per_host[host] += 1
        return conn

    def _drop_half_open(self, addr):
        if self._half_open.pop(addr, None) is not None:
            host = _host(addr)
            self._per_host[host] -= 1
            if self._per_host[host] <= 0:
                del self._per_host[host]

    def _forget(self, addr):
        self._drop_half_open(addr)
        self._sessions.pop(addr, None)

    def _fail(self, addr, alert, rec, authenticated):
        """Forget addr's handshake and return a fatal alert in epoch 0 (we have not sent our CCS).
        An established session ends only for an error in an authenticated (epoch 1) record."""
        conn = self._half_open.get(addr)
        if conn is None and addr in self._sessions and not authenticated:
            return b""                               # a plaintext record cannot end a session: drop it
        self._drop_half_open(addr)
        self._sessions.pop(addr, None)
        seq = conn.write_seq[0] if conn is not None else rec.seq
        return wire.encode_record(ALERT, 0, seq, wire.encode_alert(FATAL, alert))

    def _records(self, conn, items):
        parts = []
        for ctype, epoch, payload in items:
            seq = conn.write_seq[epoch]
            conn.write_seq[epoch] = seq + 1
            frag = conn.write_cipher.seal(wire.seq8(epoch, seq), ctype, payload) if epoch else payload
            parts.append(wire.encode_record(ctype, epoch, seq, frag))
        return b"".join(parts)


class _Datagram:
    """What one receive() call collects."""

    __slots__ = ("addr", "now", "out", "events", "retransmitted")

    def __init__(self, addr, now, out, events):
        self.addr, self.now, self.out, self.events = addr, now, out, events
        self.retransmitted = False
