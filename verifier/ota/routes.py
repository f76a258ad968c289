"""HTTP edge of signed OTA (docs/ota.md section 7, docs/api.md): admin routes for release keys,
releases and rollouts (tenant-scoped like every admin route), and the device routes: check, report
(authenticated by a binary-auth request, so replay protection applies) and downloads (gated by a
capability token that the check hands out). Domain errors become HTTP in verifier.web.middleware.
"""

import contextlib
import logging

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from verifier.attest import core as attest
from verifier.ota import core as ota
from verifier.ota import rollout as rollouts
from verifier.appkeys import CONFIG, HEALTH, OTA, POLICY, STORAGE
from verifier.binauth.device import authenticate_device_request as _device, refused_response as _refused
from verifier.config import load_kek
from verifier.errors import NotFound, ValidationError
from verifier.web.auth import require_role as _role
from verifier.web.request import list_limit as _limit, read_json as _json, request_now as _now
from verifier.registry.model import as_int

log = logging.getLogger("janua.verifier.ota")

_CHUNK = 65536


class OTAState:
    """Per-app OTA resources: the file store and the download-capability key."""

    def __init__(self, blobs, download_key, max_bytes):
        self.blobs, self.download_key, self.max_bytes = blobs, download_key, max_bytes


async def ota_ctx(app):
    config = app[CONFIG]
    app[OTA] = OTAState(app[STORAGE].release_blobs(config.release_path()), rollouts.download_key(load_kek(config)),
                        config.release_max_bytes)
    yield
    await app[OTA].blobs.close()


# -- release keys -----------------------------------------------------------------------------

async def list_keys(request):
    _, tenant_id = _role(request, "viewer")
    return web.json_response({"keys": [ota.key_view(k) for k in request.app[STORAGE].list_release_keys(tenant_id)]})


async def add_key(request):
    token_id, tenant_id = _role(request, "admin")
    out = ota.add_key(request.app[STORAGE], tenant_id, await _json(request), _now(request), token_id)
    return web.json_response(out, status=201)


async def retire_key(request):
    token_id, tenant_id = _role(request, "admin")
    return web.json_response(ota.retire_key(request.app[STORAGE], tenant_id, request.match_info["kid"],
                                            _now(request), token_id))


# -- releases ---------------------------------------------------------------------------------

# what aiohttp's multipart reader raises on a malformed body (no or a bad boundary, a part header
# without a colon, a body cut short): each becomes one 400, never a 500
_MULTIPART_ERRORS = (ValueError, TypeError, RuntimeError, LookupError, AssertionError, HttpProcessingError)


async def _multipart(call, *args):
    try:
        return await call(*args)
    except _MULTIPART_ERRORS:
        raise ValidationError("the body is not well-formed multipart/form-data") from None


async def _read_part(part, cap, what):
    data = bytearray()
    while True:
        chunk = await _multipart(part.read_chunk, _CHUNK)
        if not chunk:
            return bytes(data)
        data += chunk
        if len(data) > cap:
            raise ota.ReleaseRejected(f"{what} over {cap} bytes")


async def publish(request):
    """multipart/form-data: part "manifest.json", part "manifest.sig", then one part per file named
    "files/<path>". The signature is checked before any file is read; each file is hashed while it
    streams to a temporary file; the release is stored only when all of them match."""
    token_id, tenant_id = _role(request, "admin")
    st, state = request.app[STORAGE], request.app[OTA]
    now = _now(request)
    upload = None
    try:
        if not request.content_type.startswith("multipart/form-data"):
            raise ValidationError("the body must be multipart/form-data (manifest.json, manifest.sig, files/...)")
        reader = await _multipart(request.multipart)
        head = {}
        for name, cap in (("manifest.json", ota.MAX_MANIFEST), ("manifest.sig", ota.MAX_SIG)):
            part = await _multipart(reader.next)
            if part is None or getattr(part, "name", None) != name:
                raise ota.ReleaseRejected(f"part {len(head) + 1} must be {name}")
            head[name] = await _read_part(part, cap, name)
        upload = ota.Upload(st, state.blobs, tenant_id, head["manifest.json"], head["manifest.sig"], now,
                            token_id, state.max_bytes)
        while (part := await _multipart(reader.next)) is not None:
            name = getattr(part, "name", None) or ""
            if not name.startswith("files/"):
                raise ota.ReleaseRejected(f"unexpected part {name[:80]!r}")
            w = upload.open_file(name[6:])
            while chunk := await _multipart(part.read_chunk, _CHUNK):
                w.write(chunk)
            w.close()
        rel = upload.finish()
    except (ota.ReleaseRejected, ota.ReleaseConflict) as e:
        if upload is not None:
            upload.abort()
        st.add_audit([ota.audit_row(now, tenant_id, token_id, "ota.release.publish", None, "error", str(e)[:300])])
        raise
    except BaseException:
        if upload is not None:
            upload.abort()
        raise
    return web.json_response(ota.release_view(rel, st.list_release_files(rel["id"])), status=201)


async def list_releases(request):
    _, tenant_id = _role(request, "viewer")
    kind = request.query.get("kind")
    rels = request.app[STORAGE].list_releases(tenant_id, kind=kind, limit=_limit(request))
    return web.json_response({"releases": [ota.release_view(r) for r in rels]})


async def get_release(request):
    _, tenant_id = _role(request, "viewer")
    st = request.app[STORAGE]
    rel = ota.get_release(st, tenant_id, request.match_info["release_id"])
    out = ota.release_view(rel, st.list_release_files(rel["id"]))
    ro = st.get_rollout_for_release(tenant_id, rel["id"])
    out["rollout_id"] = ro["id"] if ro else None
    return web.json_response(out)


# -- rollouts ---------------------------------------------------------------------------------

async def create_rollout(request):
    token_id, tenant_id = _role(request, "operator")
    st = request.app[STORAGE]
    ota.get_release(st, tenant_id, request.match_info["release_id"])      # 404 before the body
    doc = await _json(request) if await request.read() else {}
    ro = rollouts.create_rollout(st, tenant_id, request.match_info["release_id"], doc, _now(request), token_id)
    return web.json_response(rollouts.rollout_status(st, ro, _now(request)), status=201)


async def list_rollouts(request):
    _, tenant_id = _role(request, "viewer")
    st, now = request.app[STORAGE], _now(request)
    state = request.query.get("state")
    return web.json_response({"rollouts": [rollouts.rollout_status(st, ro, now)
                                           for ro in st.list_rollouts(tenant_id, state)[:_limit(request)]]})


async def get_rollout(request):
    _, tenant_id = _role(request, "viewer")
    st = request.app[STORAGE]
    ro = rollouts.get_rollout(st, tenant_id, request.match_info["rollout_id"])
    return web.json_response(rollouts.rollout_status(st, ro, _now(request)))


async def halt_rollout(request):
    token_id, tenant_id = _role(request, "operator")
    st = request.app[STORAGE]
    rollouts.get_rollout(st, tenant_id, request.match_info["rollout_id"])
    doc = await _json(request) if await request.read() else {}
    if not isinstance(doc, dict):
        raise ValidationError('the body must be empty or {"reason": "..."}')
    reason = doc.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
        raise ValidationError("reason must be a string of at most 500 characters")
    ro = rollouts.halt(st, tenant_id, request.match_info["rollout_id"], _now(request), token_id, reason)
    return web.json_response(rollouts.rollout_status(st, ro, _now(request)))


async def resume_rollout(request):
    token_id, tenant_id = _role(request, "operator")
    st = request.app[STORAGE]
    ro = rollouts.resume(st, tenant_id, request.match_info["rollout_id"], _now(request), token_id)
    return web.json_response(rollouts.rollout_status(st, ro, _now(request)))


# -- devices ----------------------------------------------------------------------------------

async def check(request):
    # open to a quarantined device (docs/ota.md 7.4): an update is how it gets repaired
    dev, doc, reply = await _device(request, allow_quarantined=True)
    if dev is None:
        return _refused(reply)
    kind, version, counter = doc.get("kind", "app"), doc.get("version"), as_int(doc.get("counter", 0))
    if kind not in ota.KINDS or (version is not None and not isinstance(version, str)) or counter is None:
        raise ValidationError("kind must be app|firmware, version a string or null, counter an integer")
    now = _now(request)
    # the device's update policy (docs/policies.md "OTA"): refused or deferred, no rollout offers it anything now
    gate = request.app[POLICY].update_gate(dev, now) if POLICY in request.app else None
    best = rollouts.choose_update(request.app[STORAGE], dev, kind, version, counter, now) if gate is None else None
    update = None
    if best is not None:
        rel, ro = best
        tok = rollouts.download_token(request.app[OTA].download_key, rel["id"], dev["id"], now + rollouts.DOWNLOAD_TTL_S)
        base = f"/v1/ota/releases/{rel['id']}/"
        update = {"release_id": rel["id"], "rollout_id": ro["id"], "kind": rel["kind"], "version": rel["version"],
                  "counter": rel["counter"], "size": rel["size"],
                  "manifest_url": f"{base}manifest.json?t={tok}", "sig_url": f"{base}manifest.sig?t={tok}",
                  "files_url": base + "files/{path}?t=" + tok, "expires": now + rollouts.DOWNLOAD_TTL_S}
    out = {"auth": reply.hex(), "update": update}
    if gate is not None:
        out["policy"] = gate
    ch = attest.due_challenge(request.app[STORAGE], dev, now)     # continuous attestation (docs/attestation.md 5)
    if ch is not None:
        out["attest"] = {"nonce": ch["nonce"], "expires_at": ch["expires_at"]}
    if "health" in doc:                  # a health report (docs/health.md 2.4): never fails the check
        out["health"] = _health(request, dev, doc["health"], now)
    return web.json_response(out)


def _health(request, dev, report_hex, now):
    ingest = request.app.get(HEALTH)
    if ingest is None:
        return "unavailable"
    try:
        report = bytes.fromhex(report_hex) if isinstance(report_hex, str) and report_hex == report_hex.lower() else None
    except ValueError:
        report = None
    if report is None:
        return "malformed"
    return ingest.ingest(dev["id"], dev["tenant_id"], "ota", report, now)


async def report(request):
    dev, doc, reply = await _device(request, allow_quarantined=True)
    if dev is None:
        return _refused(reply)
    rel = rollouts.record_report(request.app[STORAGE], dev, doc, _now(request))
    return web.json_response({"auth": reply.hex(), "release_id": rel["id"], "state": doc["state"]})


def _download_release(request):
    st = request.app[STORAGE]
    rid = request.match_info["release_id"]
    did = rollouts.check_download_token(request.app[OTA].download_key, rid, request.query.get("t", ""), _now(request))
    dev = st.get_device(did)
    # a capability outlives the check that issued it by up to DOWNLOAD_TTL_S: the device must still be
    # active and not compromised now (quarantined is fine: the download is its repair)
    ok = dev is not None and dev["status"] == "active" and not dev["compromised"]
    rel = st.get_release(dev["tenant_id"], rid) if ok else None
    if rel is None:
        raise NotFound("no such file")
    return rel


async def download_manifest(request):
    rel = _download_release(request)
    return web.Response(body=rel["manifest"], content_type="application/json")


async def download_sig(request):
    rel = _download_release(request)
    return web.Response(body=rel["sig"], content_type="application/json")


async def download_file(request):
    """One file of a release, from the blob store the storage chose (a folder, or the database: the same
    answers). A single byte range is served (206; 416 with `bytes */size` when it is not satisfiable or not
    understood, as aiohttp's FileResponse does); the ETag is the file's SHA-256, the same on every instance, and
    an If-Range that names it (or none) lets the range apply; If-None-Match that names it gives 304."""
    rel = _download_release(request)
    f = request.app[STORAGE].get_release_file(rel["id"], request.match_info["path"])
    if f is None:
        raise NotFound("no such file")
    size, etag = f["size"], f'"{f["sha256"]}"'
    headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes", "ETag": etag}
    if {etag, "*"} & _etags(request.headers.get("If-None-Match")):
        return web.Response(status=304, headers={"ETag": etag})
    status, start, stop = 200, 0, size
    if "Range" in request.headers and request.headers.get("If-Range", etag) == etag:
        try:
            rng = request.http_range
        except ValueError:
            rng = None
        start = rng.start if rng is not None else None
        if start is not None and start < 0 and rng.stop is None:            # bytes=-N: the last N bytes
            start = max(size + start, 0)
        if start is None or start >= size:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        status, stop = 206, min(rng.stop if rng.stop is not None else size, size)
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    chunks = request.app[OTA].blobs.read(f["sha256"], start, stop)
    async with contextlib.aclosing(chunks):
        try:
            first = await anext(chunks, b"")
        except FileNotFoundError:
            log.error("release %s: file %s (%s) is not in the blob store", rel["id"], f["path"], f["sha256"])
            raise NotFound("no such file") from None
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = stop - start
        await resp.prepare(request)
        await resp.write(first)
        async for data in chunks:
            await resp.write(data)
        await resp.write_eof()
    return resp


def _etags(value):
    """The entity tags of an If-None-Match header (weak ones compared as strong: RFC 9110 13.1.2), a set."""
    return {t.strip().removeprefix("W/") for t in value.split(",")} if value else set()


ROUTES = [
    ("GET", "/v1/release-keys", list_keys),
    ("POST", "/v1/release-keys", add_key),
    ("POST", "/v1/release-keys/{kid}/retire", retire_key),
    ("POST", "/v1/releases", publish),
    ("GET", "/v1/releases", list_releases),
    ("GET", "/v1/releases/{release_id}", get_release),
    ("POST", "/v1/releases/{release_id}/rollout", create_rollout),
    ("GET", "/v1/rollouts", list_rollouts),
    ("GET", "/v1/rollouts/{rollout_id}", get_rollout),
    ("POST", "/v1/rollouts/{rollout_id}/halt", halt_rollout),
    ("POST", "/v1/rollouts/{rollout_id}/resume", resume_rollout),
    ("POST", "/v1/ota/check", check),
    ("POST", "/v1/ota/report", report),
    ("GET", "/v1/ota/releases/{release_id}/manifest.json", download_manifest),
    ("GET", "/v1/ota/releases/{release_id}/manifest.sig", download_sig),
    ("GET", "/v1/ota/releases/{release_id}/files/{path:.+}", download_file),
]
ADMIN_ROUTES = [r for r in ROUTES if not r[1].startswith("/v1/ota/")]


CLEANUP_CTX = (ota_ctx,)
