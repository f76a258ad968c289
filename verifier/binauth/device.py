"""The device side of HTTP routes that other features share (OTA check/report, attestation, device tokens): a
device authenticates a JSON request with a fresh binary auth request (decided by the binauth core
exactly like POST /v1/binauth, so replay protection applies), and a refusal answers with the binary
reply. Nothing here knows what the route then does with the device."""

from aiohttp import web

from verifier.appkeys import BATCHER, STORAGE
from verifier.binauth.core import HTTP_STATUS, OK, REQUEST_LEN, STATUS_NAMES
from verifier.errors import ValidationError
from verifier.web.request import read_json as _json, request_source

MAX_DEVICE_BODY = 2048


async def authenticate_device_request(request, allow_quarantined=False):
    """(device, body, reply) for a device route: the body's "auth" (or the X-Janua-Auth header) is
    a 20-byte binary auth request in hex, decided by the binauth core like POST /v1/binauth (so a
    replayed or stale request is refused). Not OK: the handler answers with the reply.

    `allow_quarantined=True` is for the routes a quarantined device may still use so that it can be
    repaired (OTA check and report, attestation: docs/protocol.md 3.4): there the quarantine flag
    alone does not refuse the request (its timestamp is recorded like any accepted one, so replays
    stay refused); a compromised, suspended or decommissioned device is refused as everywhere. The
    returned device row carries the flag (`dev["quarantined"]`) for a route that must know."""
    if request.content_length is None or request.content_length > MAX_DEVICE_BODY:
        raise ValidationError(f"the body must be JSON of at most {MAX_DEVICE_BODY} bytes")
    doc = await _json(request)
    if not isinstance(doc, dict):
        raise ValidationError("the body must be a JSON object")
    auth = doc.get("auth", request.headers.get("X-Janua-Auth"))
    try:
        data = bytes.fromhex(auth) if isinstance(auth, str) else b""
    except ValueError:
        data = b""
    if len(data) != REQUEST_LEN:
        raise ValidationError("auth must be a binary auth request: 40 hex characters")
    reply = await request.app[BATCHER].submit(data, request_source(request) or "?", "http", allow_quarantined)
    dev = request.app[STORAGE].get_device(data[:8]) if reply[0] == OK else None
    return dev, doc, reply


def refused_response(reply):
    return web.json_response({"error": "unauthenticated", "message": STATUS_NAMES[reply[0]].lower(),
                              "auth": reply.hex()}, status=HTTP_STATUS[reply[0]])
