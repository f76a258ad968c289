"""Request parsing helpers shared by the feature routes: the app clock, a JSON body, the
{device_id} path parameter, list limits, the request's source address (request_source, verifier/web/source.py:
the one place that reads the TCP peer and X-Forwarded-For) and the verifier-wide per-source limit."""

import json

from verifier.appkeys import CONFIG
from verifier.errors import NotFound, RateLimited, ValidationError
from verifier.registry.model import parse_device_id
from verifier.web.source import request_source  # noqa: F401 (re-exported for the feature routes)

MAX_LIST = 1000


def request_now(request):
    """The app's clock (Config.clock), in whole unix seconds."""
    return int(request.app[CONFIG].clock())


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def loads_strict(text):
    """json.loads of RFC 8259 JSON only: NaN and Infinity are refused, as JSON Schema knows no such numbers."""
    return json.loads(text, parse_constant=_no_constant)


async def read_json(request):
    """The body as JSON; ValidationError (400) if it is not."""
    try:
        return await request.json(loads=loads_strict)
    except (ValueError, RecursionError):       # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValidationError("the body must be JSON") from None


def list_limit(request, default=100):
    """The `limit` query parameter of a list route: an integer in [1, MAX_LIST]; ValidationError if not."""
    try:
        limit = int(request.query.get("limit", str(default)))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIST:
        raise ValidationError(f"limit must be an integer in [1, {MAX_LIST}]")
    return limit


def list_cursor(request):
    """The `cursor` query parameter (the seq of the last item of the previous page, as decimal text) or None."""
    before = request.query.get("cursor")
    if before is not None:
        if not (before.isascii() and before.isdigit() and 1 <= len(before) <= 18):
            raise ValidationError("cursor must be a next_cursor value of an earlier page")
        before = int(before)
    return before


def path_device_id(request):
    """The {device_id} path parameter as 8 bytes; NotFound (404) if it is not a device id."""
    did = parse_device_id(request.match_info["device_id"])
    if did is None:
        raise NotFound("no such device")
    return did


def limit_source(request, limits, what, now):
    """The verifier-wide per-source limit (Config.source_capacity/source_refill_per_s) in front of an
    endpoint whose every request costs a signature check; RateLimited (429) when it is spent."""
    cfg = request.app[CONFIG]
    if not limits.take(f"{what}-src:{request_source(request) or '?'}", cfg.source_capacity,
                                    cfg.source_refill_per_s, now):
        raise RateLimited(f"too many {what} requests from this address; retry later")
