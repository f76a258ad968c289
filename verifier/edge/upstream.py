"""The edge verifier's client of its upstream (the cloud verifier's /v1/edge/* routes, docs/tokens.md
"Edge verifier"), on one aiohttp ClientSession with short timeouts.

Every failure to get an answer (connection refused, timeout, 5xx, a body that is not the expected JSON)
is UpstreamUnavailable: the edge then serves from its cache within its offline window. A 401/403 means
the edge's token is wrong or revoked, or its role is not edge (or admin): that is logged as one error line
saying which (an operator must act) and also treated as unavailable. The token is sent only in the
Authorization header and never logged.
"""

import logging

import aiohttp

from verifier.errors import StorageError
from verifier.registry.model import ROLES

log = logging.getLogger("janua.verifier.edge")

TIMEOUT = aiohttp.ClientTimeout(total=10, sock_connect=3)
MAX_RESPONSE = 64 * 1024 * 1024


class UpstreamUnavailable(StorageError):
    """The edge's upstream did not answer usefully (down, slow, refused the edge's token)."""

    code = "upstream_unavailable"


async def _token_refusal(r):
    """What to tell the operator about a 401/403 from the upstream: for a 403, the role the upstream says the
    token has (docs/api.md "Roles": only a known role name is repeated, never other text of the answer)."""
    if r.status == 401:
        return "the token in --upstream-token-file is unknown or revoked there"
    try:
        message = (await r.json(content_type=None)).get("message", "")
    except (ValueError, AttributeError, aiohttp.ClientError):
        message = ""
    role = message.rpartition("this token's role is ")[2] if isinstance(message, str) else ""
    held = f"its role is {role}" if role in ROLES else "its role does not suffice"
    return (f"{held}, and an edge verifier needs a token with role edge (issue one on the upstream with "
            "`janua tenant token NAME --role edge`, into --upstream-token-file)")


class Upstream:
    def __init__(self, url, token, timeout=TIMEOUT):
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = timeout
        self._session = None

    async def open(self):
        self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers,
                                              read_bufsize=2 ** 16)

    async def close(self):
        if self._session is not None:
            await self._session.close()

    async def _call(self, method, path, params=None, body=None, absent_ok=False):
        try:
            async with self._session.request(method, self.url + path, params=params, json=body) as r:
                if r.status == 404 and absent_ok:
                    return None
                if r.status in (401, 403):
                    why = await _token_refusal(r)
                    log.error("edge: the upstream %s refused the edge's token (HTTP %d): %s", self.url, r.status, why)
                    raise UpstreamUnavailable(f"upstream refused the edge's token (HTTP {r.status}): {why}")
                if r.status != 200:
                    raise UpstreamUnavailable(f"upstream {method} {path}: HTTP {r.status}")
                if r.content_length is not None and r.content_length > MAX_RESPONSE:
                    raise UpstreamUnavailable(f"upstream {method} {path}: response too large")
                doc = await r.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise UpstreamUnavailable(f"upstream {method} {path}: {type(e).__name__}: {e}") from None
        if not isinstance(doc, dict):
            raise UpstreamUnavailable(f"upstream {method} {path}: not a JSON object")
        return doc

    async def request(self, method, path, body=None):
        """(HTTP status, JSON body or None) of one call, errors included (the gateway attestation routes,
        verifier/edge/attestor.py, tell a refusal from an outage); UpstreamUnavailable if no answer."""
        try:
            async with self._session.request(method, self.url + path, json=body) as r:
                try:
                    doc = await r.json(content_type=None)
                except ValueError:
                    doc = None
                return r.status, doc
        except (aiohttp.ClientError, TimeoutError) as e:
            raise UpstreamUnavailable(f"upstream {method} {path}: {type(e).__name__}: {e}") from None

    async def device(self, device_hex):
        """The upstream's entry for one device, or None if it does not know it (in the edge's tenant)."""
        return await self._call("GET", f"/v1/edge/devices/{device_hex}", absent_ok=True)

    async def snapshot(self, after=None, since=None):
        """Keys, revocations, and (with the cursor `after`) the entries of devices changed after it and the
        ids of those deleted; `since` (unix seconds) only for an upstream of the previous release."""
        params = {"after": str(int(after))} if after is not None else \
            None if since is None else {"since": str(int(since))}
        return await self._call("GET", "/v1/edge/snapshot", params=params)

    async def report(self, body):
        return await self._call("POST", "/v1/edge/reports", body=body)
