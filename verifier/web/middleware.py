"""The error middleware: the only place where domain errors (verifier.errors) become HTTP replies,
always JSON {"error": code, "message": text}."""

import logging

from aiohttp import web

from verifier.errors import (Conflict, ConfigError, Forbidden, NotFound, RateLimited, StorageError, Unauthorized,
                             Unavailable, ValidationError, VerifierError)

log = logging.getLogger("janua.verifier.http")

ERROR_STATUS = {ValidationError: 400, Unauthorized: 401, Forbidden: 403, NotFound: 404, Conflict: 409, RateLimited: 429,
                StorageError: 503, Unavailable: 503, ConfigError: 500}


def _http_status(exc):
    for cls in type(exc).__mro__:
        if cls in ERROR_STATUS:
            return ERROR_STATUS[cls]
    return 500


def json_error(status, code, message, headers=None):
    return web.json_response({"error": code, "message": message}, status=status, headers=headers)


@web.middleware
async def error_middleware(request, handler):
    try:
        return await handler(request)
    except VerifierError as e:
        status = _http_status(e)
        if status >= 500:
            log.error("%s %s: %s", request.method, request.path, e)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {"Retry-After": "1"} if status == 429 else None
        return json_error(status, e.code, str(e), headers)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return json_error(e.status, e.reason.lower().replace(" ", "_"), e.reason, {
            k: v for k, v in e.headers.items() if k.lower() == "allow"})
    except Exception:
        log.exception("%s %s: unexpected error", request.method, request.path)
        return json_error(500, "internal", "internal error")
