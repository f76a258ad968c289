"""Claims over plain CoAP (verifier/claims/coap.py): ClaimCoAP.handle, the endpoint's framing, refusal mapping and
retransmission table, in front of a small claim service that parses the request as the real one does
(core.decode_request_unverified: MalformedClaim) and then answers or refuses by the request's last byte. An input
is up to 16 datagrams (fuzz.harness.SEP); each message's first byte picks its source (one of 4 ports) and moves the
clock (0..63 s). handle() documents no exception: junk gets no answer (None), anything else a message that must
itself parse as CoAP, be an ACK or RST with the request's message id, and never exceed MAX_DATAGRAM; the table
never holds more than DEDUP_MAX replies and nothing stays pending after an input."""

import asyncio

from aiocoap import ACK, RST, Message

from fuzz.harness import check, frames
from verifier.claims import coap, core

ALLOWED = ()
_REFUSALS = (core.ClaimInvalid("x"), core.BatchExhausted("x"), core.ClaimReplayed("x"), core.ClaimRateLimited("x"),
             core.HookUnavailable("x"))


class _Service:
    async def claim(self, data, source, server, now):
        req = core.decode_request_unverified(data)
        pick = data[-1] % 8
        if pick < len(_REFUSALS):
            raise _REFUSALS[pick]
        return bytes(76) + req.serial.encode()


def make(workdir):
    loop = asyncio.new_event_loop()
    endpoint = coap.ClaimCoAP(_Service(), lambda: {"host": "127.0.0.1", "udp_port": None, "http_port": 8080,
                                                   "dtls_port": None})
    now = [1_780_000_000.0]

    def one_input(data):
        for msg in frames(data, 16):
            if not msg:
                continue
            now[0] += msg[0] & 63
            addr = ("192.0.2.%d" % (1 + (msg[0] >> 6)), 40000 + (msg[0] >> 6))
            dgram = msg[1:]
            reply = loop.run_until_complete(endpoint.handle(dgram, addr, now[0]))
            if reply is not None:
                check(type(reply) is bytes and len(reply) <= coap.MAX_DATAGRAM + 256, "reply not bytes or too long")
                m = Message.decode(reply)
                check(m.mtype in (ACK, RST), "reply is not an ACK or a RST")
                check(m.mid == int.from_bytes(dgram[2:4], "big"), "reply's message id is not the request's")
            check(len(endpoint._seen) <= coap.DEDUP_MAX, "dedup table over its bound")
            check(endpoint.pending == 0, "a claim left pending")

    return one_input


def seeds(workdir):
    req = bytes.fromhex("0101") + bytes(8) + bytes(16) + b"\x04SN-1" + bytes(16)
    con = b"\x42\x02\x12\x34\xa1\xb2\xb5claim\x11\x2a\xff"
    return [b"\x00" + con + req, b"\x41" + con + req[:-1] + b"\x07", b"\x00\x40\x00\x00\x01",
            b"\x00" + con + req + b"\xa5JF\x5a\x02" + con + req, b"\x00\x42\x01\x12\x34\xa1\xb2\xb5claim"]
