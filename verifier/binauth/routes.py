"""HTTP route of binary auth: POST /v1/binauth (docs/protocol.md 3.5). The body is the 20-byte request,
decided by the group-commit batcher like a UDP datagram; the reply is always the binary reply and the
status mirrors it."""

from aiohttp import web

from verifier.appkeys import BATCHER
from verifier.binauth.core import HTTP_STATUS, MALFORMED, unauthenticated_reply
from verifier.web.request import request_source


async def binauth(request):
    if request.content_length is not None and request.content_length > 156:
        reply = unauthenticated_reply(MALFORMED)
    else:
        data = await request.content.read(157)
        reply = await request.app[BATCHER].submit(data, request_source(request) or "?", "http", protocol="binauth_http")
    return web.Response(body=reply, status=HTTP_STATUS[reply[0]], content_type="application/octet-stream")


ROUTES = [
    ("POST", "/v1/binauth", binauth),
]


CLEANUP_CTX = ()
