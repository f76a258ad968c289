"""The console's routes (docs/console.md): sign-in and sessions, the pages, and the changes they offer.

Every page reads through the functions and storage the JSON API uses (fleet status, device views, the health
document, attestation, rollout status) and every change goes through the same core function as its JSON route
(a lifecycle action: verifier.registry.actions.change_lifecycle; halt/resume: verifier.ota.rollout), audited
with the session's admin token id as the actor. Security (docs/console.md "Security model"): a server-side
session per sign-in (the cookie holds a random id; the database its hash), re-checked against the token on
every request; every POST but sign-in carries the session's CSRF token; the token's role is checked here, on
the server, for every change; every value is escaped (verifier/console/html.py); each response has a
Content-Security-Policy without inline script and refuses framing. Errors are HTML pages, not JSON."""

import base64
import csv
import hashlib
import hmac
import io
import json
import logging
import secrets
import time
from urllib.parse import urlencode

from aiohttp import web

from verifier.appkeys import HEALTH, STORAGE
from verifier.attest import core as attest
from verifier.console import pages
from verifier.console.html import STATIC, STATIC_TYPES, esc, layout
from verifier.console.store import SORTS, cursor_values
from verifier.errors import NotFound, Unauthorized, ValidationError, VerifierError
from verifier.fleet import core as fleet
from verifier.health.document import HISTORY_S, health_document
from verifier.ota import rollout as rollouts
from verifier.registry import actions, core as registry
from verifier.registry.model import MAX_TEXT, STATUSES, parse_device_id, role_allows
from verifier.web.request import list_cursor, path_device_id, request_now, request_source

log = logging.getLogger("janua.verifier.console")

COOKIE = "janua_console"
SESSION_S = 8 * 3600
PAGE = 50                   # rows per page of the devices and audit tables
CSV_BATCH = 1000
CSV_MAX_ROWS = 1_000_000    # one export at most (docs/console.md)
# A device's page looks for its audit rows among the tenant's latest DEVICE_AUDIT_WINDOW (by seq): the audit table
# has no index by device (one more index write on every authentication), so a device seldom seen would otherwise
# scan the tenant's whole trail. The audit page filtered by the device goes further back (docs/console.md).
DEVICE_AUDIT_WINDOW = 50_000
DEVICE_AUDIT_ROWS = 50
DEVICE_AUTHS = 20
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
CSV_HEADER = ("seq", "time", "kind", "device_id", "actor", "action", "transport", "source", "result", "reason")


# -- responses ------------------------------------------------------------------------------------------

def _html(text, status=200):
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8",
                        headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})


def _redirect(location):
    return web.Response(status=303, headers={**SECURITY_HEADERS, "Location": location, "Cache-Control": "no-store"})


def _error(status, message, session=None):
    body = f'<p id="error" role="alert">{esc(message)}</p><p><a href="/console/">Back to the console</a></p>'
    return _html(layout("Error" if session else "janua console", body, session), status)


# -- sessions -------------------------------------------------------------------------------------------

def _hash(sid):
    return hashlib.sha256(sid.encode()).digest()


def _session(request):
    """The request's session (its token re-checked: revoked or expired is None), with id_hash and can_change."""
    sid = request.cookies.get(COOKIE)
    if not sid or len(sid) > 128 or not sid.isascii():
        return None
    h = _hash(sid)
    s = request.app[STORAGE].get_console_session(h, request_now(request))
    if s is None or not role_allows(s["role"], "viewer"):
        return None
    s["id_hash"] = h
    s["can_change"] = role_allows(s["role"], "operator")
    return s


async def index(request):
    return _redirect("/console/fleet" if _session(request) else "/console/sign-in")


async def sign_in_page(request):
    return _html(layout("Sign in", pages.sign_in()))


async def sign_in(request):
    form = await request.post()
    token = form.get("token")
    st, now = request.app[STORAGE], request_now(request)
    try:
        token_id, tenant_id, role = registry.authenticate_token(
            st, "Bearer " + (token if isinstance(token, str) else ""))
    except Unauthorized:
        return _html(layout("Sign in", pages.sign_in("That is not a valid admin token (or it was revoked).")), 401)
    if not role_allows(role, "viewer"):
        return _html(layout("Sign in", pages.sign_in(
            f"A {role} token cannot open the console: sign in with a viewer, operator or admin token.")), 403)
    sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    with st.transaction():
        st.add_console_session(_hash(sid), tenant_id, token_id, csrf, now, now + SESSION_S)
        st.add_audit([(now, tenant_id, "admin", None, token_id, "console.sign_in", "http", request_source(request),
                       "ok", f"role {role}")])
    resp = _redirect("/console/fleet")
    resp.set_cookie(COOKIE, sid, max_age=SESSION_S, path="/console", httponly=True, samesite="Strict",
                    secure=request.secure)
    return resp


# -- pages ----------------------------------------------------------------------------------------------

def _page(render, current):
    """A GET page: signed out -> the sign-in page; the page's own errors -> an HTML error page; the session's
    flash message is shown once."""
    async def handler(request):
        s = _session(request)
        if s is None:
            return _redirect("/console/sign-in")
        try:
            title, body = render(request, s)
        except NotFound as e:
            return _error(404, str(e), s)
        except ValidationError as e:
            return _error(400, str(e), s)
        if s["flash"] is not None:
            request.app[STORAGE].set_console_flash(s["id_hash"], None)
        return _html(layout(title, body, s, current, s["flash"]))
    handler.__name__ = render.__name__
    return handler


def _sync_health(request):
    ingest = request.app.get(HEALTH)
    if ingest is not None:          # the reports written behind count (as GET /v1/fleet/status does)
        ingest.sync()
    return ingest


def fleet_page(request, s):
    _sync_health(request)
    return "Fleet", pages.fleet(fleet.status(request.app[STORAGE], s["tenant_id"], request_now(request)))


def _text_param(request, name):
    v = request.query.get(name, "").strip()
    if len(v) > MAX_TEXT:
        raise ValidationError(f"{name} must be at most {MAX_TEXT} characters")
    return v or None


def _decode_cursor(text, sort):
    try:
        values = json.loads(base64.urlsafe_b64decode(text.encode() + b"=" * (-len(text) % 4)))
        ok = isinstance(values, list) and len(values) == (1 if sort == "serial" else 2)
    except (ValueError, UnicodeError):
        ok = False
    if not ok:
        raise ValidationError("cursor must be the next-page link of an earlier page")
    return values


def _encode_cursor(values):
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def device_filters(request):
    """The devices page's query parameters, checked: {q, status, firmware, online, tag, group, sort}."""
    f = {name: _text_param(request, name) for name in ("q", "status", "firmware", "online", "tag", "group", "sort")}
    if f["status"] is not None and f["status"] not in STATUSES:
        raise ValidationError(f"status must be one of {', '.join(STATUSES)}")
    if f["online"] not in (None, "yes", "no"):
        raise ValidationError("online must be yes or no")
    if f["sort"] not in (None, *SORTS):
        raise ValidationError(f"sort must be one of {', '.join(SORTS)}")
    return f


def devices_page(request, s):
    f = device_filters(request)
    sort = f["sort"] or "serial"
    after = _decode_cursor(request.query["cursor"], sort) if request.query.get("cursor") else None
    online = {"yes": True, "no": False}.get(f["online"])
    rows = request.app[STORAGE].console_devices(
        s["tenant_id"], q=f["q"], status=f["status"], firmware=f["firmware"], tag=f["tag"], group=f["group"],
        online=online, online_since=request_now(request) - fleet.ONLINE_WINDOW_S, sort=sort, after=after,
        limit=PAGE + 1)
    next_url = None
    if len(rows) > PAGE:
        rows = rows[:PAGE]
        keep = {k: v for k, v in f.items() if v is not None}
        next_url = "/console/devices?" + urlencode({**keep, "cursor": _encode_cursor(cursor_values(sort, rows[-1]))})
    return "Devices", pages.devices(rows, f, next_url, request_now(request) - fleet.ONLINE_WINDOW_S)


def device_page(request, s):
    st, now = request.app[STORAGE], request_now(request)
    dev = registry.get_device(st, s["tenant_id"], path_device_id(request))
    ingest = _sync_health(request)
    did = dev["id"]
    health = health_document(st, dev, now, ingest.briefs(did) if ingest is not None else None)
    bounds = st.audit_bounds(s["tenant_id"])
    rows = st.list_audit(s["tenant_id"], did.hex(), limit=DEVICE_AUDIT_ROWS,
                         after=bounds[1] - DEVICE_AUDIT_WINDOW if bounds else None)
    data = {
        "view": registry.device_view(dev, s["tenant_name"]),
        "certificates": st.list_certificates(s["tenant_id"], did),
        "mqtt_password": st.get_mqtt_password(did) is not None,
        "attestation": attest.attestation_view(st, dev),
        "health": health,
        "history": st.health_history(did, now - HISTORY_S),
        "audit": rows,
        "auths": [r for r in rows if r["kind"] == "auth"][:DEVICE_AUTHS],
        "audit_window": DEVICE_AUDIT_WINDOW,
    }
    return f"Device {dev['serial_number']}", pages.device(data, s, now)


def releases_page(request, s):
    st, now = request.app[STORAGE], request_now(request)
    releases = st.list_releases(s["tenant_id"], limit=PAGE)
    names = {r["id"]: f"{r['name']} {r['version']}" for r in releases}
    ros = [rollouts.rollout_status(st, ro, now) for ro in st.list_rollouts(s["tenant_id"], None)[:PAGE]]
    return "Releases and rollouts", pages.releases(releases, ros, names, s)


def audit_filters(request):
    f = {"device": _text_param(request, "device"), "kind": _text_param(request, "kind"),
         "result": _text_param(request, "result")}
    if f["device"] is not None and parse_device_id(f["device"]) is None:
        raise ValidationError("device must be a device id (16 lowercase hex characters)")
    return f


def audit_page(request, s):
    f = audit_filters(request)
    rows = request.app[STORAGE].list_audit(s["tenant_id"], f["device"], PAGE + 1, list_cursor(request),
                                           kind=f["kind"], result=f["result"])
    keep = {k: v for k, v in f.items() if v is not None}
    next_url = None
    if len(rows) > PAGE:
        rows = rows[:PAGE]
        next_url = "/console/audit?" + urlencode({**keep, "cursor": rows[-1]["seq"]})
    return "Audit log", pages.audit(rows, f, next_url, "/console/audit.csv" + ("?" + urlencode(keep) if keep else ""))


def _csv_cell(v):
    """A CSV value; text a spreadsheet would run as a formula (= + - @ first) gets a leading apostrophe."""
    v = "" if v is None else str(v)
    return "'" + v if v[:1] in ("=", "+", "-", "@", "\t", "\r") else v


async def audit_csv(request):
    s = _session(request)
    if s is None:
        return _redirect("/console/sign-in")
    try:
        f = audit_filters(request)
    except ValidationError as e:
        return _error(400, str(e), s)
    resp = web.StreamResponse(headers={**SECURITY_HEADERS, "Content-Type": "text/csv; charset=utf-8",
                                       "Content-Disposition": 'attachment; filename="janua-audit.csv"',
                                       "Cache-Control": "no-store"})
    await resp.prepare(request)
    st, before, sent = request.app[STORAGE], None, 0
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\r\n")
    out.writerow(CSV_HEADER)
    while sent < CSV_MAX_ROWS:
        rows = st.list_audit(s["tenant_id"], f["device"], min(CSV_BATCH, CSV_MAX_ROWS - sent), before,
                             kind=f["kind"], result=f["result"])
        for r in rows:
            reason = r["reason"] if not r.get("detail") else f"{r['reason'] or ''}: {r['detail']}"
            out.writerow([r["seq"], time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r["ts"])), *(
                _csv_cell(r[k]) for k in ("kind", "device_id", "actor", "action", "transport", "source", "result")),
                _csv_cell(reason)])
        await resp.write(buf.getvalue().encode())
        buf.seek(0)
        buf.truncate()
        sent += len(rows)
        if len(rows) < CSV_BATCH:
            break
        before = rows[-1]["seq"]
    await resp.write_eof()
    return resp


# -- changes --------------------------------------------------------------------------------------------

def _change(act, back, role="operator"):
    """A POST: a session (else 403), the form's csrf equal to the session's (else 403, nothing done), a token
    role that grants `role` (else 403); then `act(request, session, form)` -> the flash message, and 303 to
    back(request) (or the response act returns). A refused change (a domain error) is the flash message instead."""
    async def handler(request):
        form = await request.post()
        s = _session(request)
        if s is None:
            return _error(403, "You are signed out: sign in again.")
        given = form.get("csrf")
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), s["csrf"].encode()):
            return _error(403, "CSRF token missing or wrong", s)
        if not role_allows(s["role"], role):
            return _error(403, f"A {s['role']} token cannot make changes (it needs the {role} role).", s)
        try:
            message = await act(request, s, form)
        except NotFound as e:
            return _error(404, str(e), s)
        except VerifierError as e:
            message = f"Refused: {e}"
        if isinstance(message, web.StreamResponse):    # sign-out answers by itself
            return message
        request.app[STORAGE].set_console_flash(s["id_hash"], message)
        return _redirect(back(request))
    handler.__name__ = act.__name__
    return handler


def _form_text(form, name):
    v = form.get(name)
    return v.strip() or None if isinstance(v, str) else None


async def lifecycle(request, s, form):
    did = path_device_id(request)
    registry.get_device(request.app[STORAGE], s["tenant_id"], did)
    doc = {"action": _form_text(form, "action") or ""}
    if _form_text(form, "reason"):
        doc["reason"] = _form_text(form, "reason")
    dev = await actions.change_lifecycle(request.app, s["tenant_id"], did, doc, request_now(request), s["token_id"])
    return (f"{doc['action'].capitalize()}: done. The device is {dev['status']}"
            + (", quarantined." if dev["quarantined"] else "."))


async def halt(request, s, form):
    rid = request.match_info["rollout_id"]
    reason = _form_text(form, "reason")
    if reason is not None and len(reason) > 500:
        raise ValidationError("reason must be at most 500 characters")
    rollouts.halt(request.app[STORAGE], s["tenant_id"], rid, request_now(request), s["token_id"], reason)
    return f"Rollout {rid} halted."


async def resume(request, s, form):
    rid = request.match_info["rollout_id"]
    rollouts.resume(request.app[STORAGE], s["tenant_id"], rid, request_now(request), s["token_id"])
    return f"Rollout {rid} is active."


async def sign_out(request, s, form):
    request.app[STORAGE].delete_console_session(s["id_hash"])
    resp = _redirect("/console/sign-in")
    resp.del_cookie(COOKIE, path="/console")
    return resp


async def static(request):
    name = request.match_info["name"]
    if name not in STATIC:
        return _error(404, "no such file")
    return web.Response(body=STATIC[name], headers={
        **SECURITY_HEADERS, "Content-Type": STATIC_TYPES[name], "Cache-Control": "public, max-age=86400"})


def _device_back(request):
    return f"/console/devices/{request.match_info['device_id']}"


ROUTES = [
    ("GET", "/console", index),
    ("GET", "/console/", index),
    ("GET", "/console/sign-in", sign_in_page),
    ("POST", "/console/sign-in", sign_in),
    ("POST", "/console/sign-out", _change(sign_out, None, role="viewer")),
    ("GET", "/console/fleet", _page(fleet_page, "fleet")),
    ("GET", "/console/devices", _page(devices_page, "devices")),
    ("GET", "/console/devices/{device_id}", _page(device_page, "devices")),
    ("POST", "/console/devices/{device_id}/lifecycle", _change(lifecycle, _device_back)),
    ("GET", "/console/releases", _page(releases_page, "releases")),
    ("POST", "/console/rollouts/{rollout_id}/halt", _change(halt, lambda r: "/console/releases")),
    ("POST", "/console/rollouts/{rollout_id}/resume", _change(resume, lambda r: "/console/releases")),
    ("GET", "/console/audit", _page(audit_page, "audit")),
    ("GET", "/console/audit.csv", audit_csv),
    ("GET", "/console/static/{name}", static),
]

CLEANUP_CTX = ()
