"""A CoAP request whose string option is not UTF-8 (Uri-Path hex 9a) raised UnicodeDecodeError out of
the CoAP handler and logged a traceback per datagram inside DTLS (issue #10). It is answered 4.00 Bad
Request, with the request's token (and its message id when confirmable), and nothing is logged above
debug level."""

import asyncio
import logging

import pytest
from aiocoap import Code, Message

from tests.dtls_verifier.peers import MbedTLSClient
from verifier.dtls.coap import CoAPResources

# option numbers of the string options of RFC 7252 §5.10: Uri-Host, Location-Path, Uri-Path, Uri-Query,
# Location-Query, Proxy-Uri, Proxy-Scheme; each request carries one of them with the 1-byte value 9a
STRING_OPTIONS = {3: "31", 8: "81", 11: "b1", 15: "d102", 20: "d107", 35: "d116", 39: "d11a"}


class NoAuth:
    """The registry side is never reached by a request that does not decode."""

    def __getattr__(self, name):
        raise AssertionError(f"CoAP handler used auth.{name} for an undecodable request")


def test_non_utf8_uri_path_plaintext_vector_is_bad_request_not_an_exception():
    out = CoAPResources(NoAuth()).handle(None, bytes.fromhex("40010001b19a"), ("10.0.0.1", 4000), 0)
    # ACK, 4.00, message id 0x0001, empty token, payload "malformed option"
    assert out == bytes.fromhex("60800001ff6d616c666f726d6564206f7074696f6e")


@pytest.mark.parametrize("number", sorted(STRING_OPTIONS))
@pytest.mark.parametrize("mtype", ["con", "non"])
def test_non_utf8_string_option_is_bad_request_not_an_exception(number, mtype, caplog):
    head = {"con": "42", "non": "52"}[mtype] + "01" + "1234" + "a1b2"     # GET, mid 0x1234, token a1b2
    req = bytes.fromhex(head + STRING_OPTIONS[number] + "9a")
    with caplog.at_level(logging.INFO):
        out = CoAPResources(NoAuth(), rand=lambda n: b"\x77" * n).handle(None, req, ("10.0.0.1", 4000), 0)
    msg = Message.decode(out)
    assert msg.code == Code.BAD_REQUEST and msg.token == bytes.fromhex("a1b2")
    assert (int(msg.mtype), msg.mid) == ((2, 0x1234) if mtype == "con" else (1, 0x7777))
    assert caplog.records == []


@pytest.mark.parametrize("req", ["60010001b19a", "70010001b19a", "40000001b19a", "40450001b19a"])
def test_undecodable_non_request_gets_no_reply(req):
    # an ACK, a RST, an empty message, a response: nothing to answer
    assert CoAPResources(NoAuth()).handle(None, bytes.fromhex(req), ("10.0.0.1", 4000), 0) is None


def _send_raw(port, dev, payload):
    client = MbedTLSClient(port, dev.identity, dev.psk).handshake()
    try:
        return client.exchange(payload)
    finally:
        client.close()


async def test_non_utf8_uri_path_over_dtls_is_bad_request_without_traceback(verifier, device, caplog):
    with caplog.at_level(logging.WARNING, logger="janua"):
        reply = await asyncio.wait_for(asyncio.to_thread(_send_raw, verifier.port, device,
                                                         bytes.fromhex("40010001b19a")), 30)
    assert reply.code == Code.BAD_REQUEST and reply.mid == 1
    assert [r.getMessage() for r in caplog.records if r.name.startswith("janua")] == []
