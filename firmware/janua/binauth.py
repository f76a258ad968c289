"""The binary auth client state machine (docs/protocol.md section 3), without I/O.

A driver (udp.py, http.py, a test) asks for a request, sends it, and feeds every datagram or body
it receives to `receive()`, which returns the next state. The client sets the clock only from
authenticated replies, retries a bounded number of times on authenticated TIME_SYNC/REPLAY, keeps
unauthenticated errors as advisory (they may be spoofed, so they end nothing) and ignores
malformed or spoofed replies. It does not send, wait, sleep or persist.
"""

from micropython import const
from janua import AuthError, PacketError, health_c
from janua import packet as _p

IDLE = const(0)     # nothing sent yet
WAITING = const(1)  # a request is out; feed replies to receive()
RETRY = const(2)    # the server asked for a new timestamp; call request() again
DONE = const(3)     # authenticated success: .result holds the session
FAILED = const(4)   # authenticated refusal, too many attempts, or the driver gave up

# Events (what happened) and the transition table: (state, event) -> next state.
_SEND = const(0)
_OK = const(1)
_RESYNC = const(2)
_DENIED = const(3)
_IGNORE = const(4)
_GIVE_UP = const(5)
_TABLE = {
    (IDLE, _SEND): WAITING,
    (RETRY, _SEND): WAITING,
    (WAITING, _OK): DONE,
    (WAITING, _RESYNC): RETRY,
    (WAITING, _DENIED): FAILED,
    (WAITING, _IGNORE): WAITING,
    (WAITING, _GIVE_UP): FAILED,
    (RETRY, _GIVE_UP): FAILED,
    (IDLE, _GIVE_UP): FAILED,
}

_NAMES = ("ok", "time_sync", "signature", "unknown_device", "not_active", "replay",
          "rate_limited", "locked_out", "malformed")


def status_name(code):
    return _NAMES[code] if 0 <= code < len(_NAMES) else "status_%d" % code


class Client:
    """One authentication run. `last_sent` is the last timestamp sent (persist it if you can)."""

    def __init__(self, device_id, mac, clock, last_sent=0, max_attempts=3, tail=None):
        self.device_id = device_id
        self.tail = tail       # fn(request20) -> bytes sent after it (a health report, docs/health.md 2.1)
        self._mac = mac
        self.clock = clock
        self.last_sent = last_sent
        self.max_attempts = max_attempts
        self.attempts = 0
        self.state = IDLE
        self.request_bytes = None
        self.result = None     # decoded reply tuple of the final authenticated reply
        self.advisory = None   # last unauthenticated reply (status, ...), for reporting only
        self.reason = None     # why FAILED, one short phrase

    def _step(self, event):
        nxt = _TABLE.get((self.state, event))
        if nxt is None:
            raise AuthError("event %d not allowed in state %d" % (event, self.state))
        self.state = nxt
        return nxt

    def request(self):
        """A new 20-byte request with ts = max(now, last_sent + 1), followed by the tail's bytes."""
        if self.state not in (IDLE, RETRY):
            raise AuthError("no new request in state %d" % self.state)
        if self.attempts >= self.max_attempts:
            self.reason = "gave up after %d attempts" % self.attempts
            self._step(_GIVE_UP)
            raise AuthError(self.reason)
        self._step(_SEND)
        ts = max(self.clock.now(), self.last_sent + 1)
        self.request_bytes = _p.encode_request(self.device_id, ts, self._mac)
        self.last_sent = ts
        self.attempts += 1
        return self.request_bytes + self.tail(self.request_bytes) if self.tail else self.request_bytes

    def receive(self, reply):
        """Feed one received reply; returns the new state."""
        if self.state != WAITING:
            return self._step(_IGNORE)  # raises: nothing is expected now
        try:
            r = _p.decode_reply(self.request_bytes, reply, self._mac)
        except PacketError:
            return self._step(_IGNORE)  # malformed or spoofed: keep listening
        status = r[0]
        if not r[5]:
            self.advisory = r  # unauthenticated: report it, change nothing
            return self._step(_IGNORE)
        # Authenticated: the server time is trustworthy, adopt it. The health report's clock offset is the
        # answer to this run's first request: the board's own drift (a retry's answer only sees the fix)
        if self.attempts == 1:
            health_c[4] = r[1] - self.clock.now()
        self.clock.set_from_server(r[1])
        self.result = r
        if status == _p.OK:
            return self._step(_OK)
        if status in (_p.TIME_SYNC, _p.REPLAY):
            if self.attempts >= self.max_attempts:
                self.reason = "%s after %d attempts" % (status_name(status), self.attempts)
                return self._step(_DENIED)
            return self._step(_RESYNC)
        self.reason = status_name(status)
        return self._step(_DENIED)

    def give_up(self, reason):
        """The driver stops (timeout, network error): FAILED with the reason, or the advisory's."""
        if self.advisory is not None:
            reason = "%s (unauthenticated reply)" % status_name(self.advisory[0])
        self.reason = reason
        if self.state in (IDLE, WAITING, RETRY):
            self._step(_GIVE_UP)
        return self.state
