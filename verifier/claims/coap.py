"""Claims over plain CoAP (RFC 7252 NoSec; docs/claims.md 13): POST /claim on a UDP port of its own, off by default
(Config.coap_claim_port, `janua serve --coap-claim-port N`).

The claim protects itself (its tag, the answer's encryption and tag), so no DTLS: a board with only a claim key has
no PSK yet. `ClaimCoAP.handle(data, addr, now)` takes one datagram and returns the reply bytes or None; it runs the
same ClaimService as POST /v1/claim (every check, audit bound and rate limit; the source is the datagram's host).
Only a confirmable POST /claim reaches the service; its answer is piggy-backed in the ACK: 2.04 Changed with the
binary answer (Content-Format 42), or the refusal's code mapped from its HTTP status (REFUSAL_CODES) with the error
code as diagnostic payload. Anything else gets nothing (ACK, RST, NON, responses, unparsable or over-long datagrams),
a RST (an empty CON: a CoAP ping) or a piggy-backed 4.04/4.05/4.15, and never an audit row.

Retransmissions (RFC 7252 4.5): the reply to each (source host, port, message id) is kept for EXCHANGE_LIFETIME_S,
at most DEDUP_MAX of them (the oldest go first), and a retransmitted request gets the same bytes again; while its
claim is still being decided, nothing (the board's next retransmission finds the answer). At most MAX_PENDING
claims are in progress at once; past that a request is dropped unanswered (the board retransmits).

Not done: block-wise transfer, observe, separate responses, NON claims.
"""

import asyncio
import collections
import logging

from aiocoap import ACK, CON, RST, Code, Message
from aiocoap.error import UnparsableMessage
from aiocoap.numbers import ContentFormat

from verifier.binauth.udp import bind_udp
from verifier.errors import VerifierError
from verifier.web.middleware import ERROR_STATUS

log = logging.getLogger("janua.verifier.claims.coap")

PATH = ("claim",)
MAX_DATAGRAM = 1152                 # RFC 7252 4.6 without block-wise; a claim request is at most 107 + header
EXCHANGE_LIFETIME_S = 247.0         # RFC 7252 4.8.2
DEDUP_MAX = 4096
MAX_PENDING = 256
# HTTP status of a refusal (docs/claims.md 5) -> its CoAP response code (docs/claims.md 13)
REFUSAL_CODES = {400: Code.BAD_REQUEST, 401: Code.UNAUTHORIZED, 403: Code.FORBIDDEN, 409: Code.CONFLICT,
                 429: Code.TOO_MANY_REQUESTS, 503: Code.SERVICE_UNAVAILABLE}


def _status(exc):
    for cls in type(exc).__mro__:
        if cls in ERROR_STATUS:
            return ERROR_STATUS[cls]
    return 500


def _ack(req, code, payload=b"", content_format=None):
    msg = Message(code=code, payload=payload)
    msg.mtype, msg.mid, msg.token = ACK, req.mid, req.token
    if content_format is not None:
        msg.opt.content_format = content_format
    return msg


def refusal_message(req, exc):
    """The piggy-backed refusal for a claim refused with `exc` (a VerifierError)."""
    code = REFUSAL_CODES.get(_status(exc), Code.INTERNAL_SERVER_ERROR)
    msg = _ack(req, code, exc.code.encode())
    if code == Code.TOO_MANY_REQUESTS:
        msg.opt.max_age = 1             # RFC 8516: retry after (as HTTP's Retry-After: 1)
    return msg


class ClaimCoAP:
    """The sans-IO core of the CoAP claim endpoint: datagrams in, reply bytes out (see the module docstring)."""

    def __init__(self, service, server):
        self.service = service          # verifier.claims.service.ClaimService
        self.server = server            # () -> the answer's auth endpoint ({"host", "udp_port", "http_port", ...})
        self._seen = collections.OrderedDict()   # (host, port, mid) -> (expires, reply bytes or None: pending)
        self.pending = 0
        self.dropped = 0                # datagrams answered with nothing (junk, ACK/RST/NON, overload)

    def _expire(self, now):
        seen = self._seen
        while seen:
            key, (expires, _) = next(iter(seen.items()))
            if expires > now and len(seen) < DEDUP_MAX:
                break
            seen.popitem(last=False)

    def _junk(self, why, addr):
        self.dropped += 1
        log.debug("coap claim %s: %s", addr, why)

    async def handle(self, data, addr, now):
        if len(data) > MAX_DATAGRAM:
            return self._junk("over-long datagram", addr)
        if len(data) < 4 or 4 + (data[0] & 15) > len(data):    # aiocoap takes a cut-off token as a shorter one
            return self._junk("short header or token", addr)
        try:
            req = Message.decode(data)
        except (UnparsableMessage, ValueError) as e:
            return self._junk(f"unparsable: {e}", addr)
        if req.mtype != CON:
            return self._junk("not confirmable", addr)
        if req.code == Code.EMPTY:              # CoAP ping (RFC 7252 4.3)
            msg = Message(code=Code.EMPTY)
            msg.mtype, msg.mid = RST, req.mid
            return msg.encode()
        if not req.code.is_request():
            return self._junk("not a request", addr)
        if tuple(req.opt.uri_path) != PATH:
            return _ack(req, Code.NOT_FOUND).encode()
        if req.code != Code.POST:
            return _ack(req, Code.METHOD_NOT_ALLOWED).encode()
        if req.opt.content_format not in (None, ContentFormat.OCTETSTREAM):
            return _ack(req, Code.UNSUPPORTED_CONTENT_FORMAT).encode()
        self._expire(now)
        key = (addr[0], addr[1], req.mid)
        hit = self._seen.get(key)
        if hit is not None:
            if hit[1] is None:
                return self._junk("retransmission of a claim in progress", addr)
            return hit[1]                       # a retransmission: the same bytes again
        if self.pending >= MAX_PENDING:
            return self._junk("too many claims in progress", addr)
        self._seen[key] = (now + EXCHANGE_LIFETIME_S, None)
        self.pending += 1
        try:
            answer = await self.service.claim(bytes(req.payload), addr[0], self.server(), now, "coap")
            reply = _ack(req, Code.CHANGED, answer, ContentFormat.OCTETSTREAM)
        except VerifierError as e:
            reply = refusal_message(req, e)
        except Exception:                       # as the HTTP error middleware: a 5.00, the trace in the log
            log.exception("coap claim from %s", addr[0])
            reply = _ack(req, Code.INTERNAL_SERVER_ERROR, b"internal_error")
        finally:
            self.pending -= 1
        out = reply.encode()
        if key in self._seen:
            self._seen[key] = (now + EXCHANGE_LIFETIME_S, out)
        return out


class ClaimCoAPEndpoint(asyncio.DatagramProtocol):
    """The UDP driver: one task per datagram into ClaimCoAP.handle, its reply sent back to the datagram's source."""

    def __init__(self, core, clock):
        self.core, self.clock = core, clock
        self.transport = None
        self.port = 0
        self._tasks = set()

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        if len(self._tasks) >= MAX_PENDING:
            self.core.dropped += 1
            return
        task = asyncio.get_running_loop().create_task(self._one(data, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _one(self, data, addr):
        reply = await self.core.handle(data, addr, self.clock())
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc):       # e.g. ICMP port unreachable from a board that went away
        log.debug("coap claim: %s", exc)

    async def close(self):
        if self.transport is not None:
            self.transport.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def open_claim_coap(service, server, clock, host, port):
    """Bind the endpoint (port 0: any free port); return the driver (.port, .core, await .close())."""
    sock = await bind_udp(host, port)
    endpoint = ClaimCoAPEndpoint(ClaimCoAP(service, server), clock)
    await asyncio.get_running_loop().create_datagram_endpoint(lambda: endpoint, sock=sock)
    endpoint.port = sock.getsockname()[1]
    return endpoint
