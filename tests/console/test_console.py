"""The operator console's server side (docs/console.md, issue #16): sign-in and sessions, cookie flags, CSRF and
roles on every change, each page's content for a small fleet, search and cursor pages of the devices table, the
lifecycle and rollout changes (audited, the binary-auth cache forgets), the audit CSV, escaping and the security
headers. Runs on SQLite and, with JANUA_TEST_BACKEND=postgresql, on PostgreSQL."""

import hashlib
import re
import ssl

import pytest
from aiohttp.test_utils import TestClient, TestServer

from verifier import keys
from verifier.app import create_app
from verifier.appkeys import SEALER, STORAGE
from verifier.binauth.core import NOT_ACTIVE, OK, decode_reply, encode_request
from verifier.registry import core as registry
from verifier.web.tls import ensure_self_signed
from tests.console.conftest import CSRF


def _rows(text, attr="data-device-id"):
    return re.findall(attr + r'="([^"]+)"', text)


# -- sign-in, sessions, cookie ------------------------------------------------------------------------

async def test_sign_in_with_the_admin_token_opens_the_fleet_page(console):
    r = await console.client.post("/console/sign-in", data={"token": console.token}, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/console/fleet"
    text = await console.page("/console/fleet")
    assert '<span class="who">acme · admin</span>' in text
    assert '<button type="submit" id="sign-out">Sign out</button>' in text
    row, = console.audit_rows("console.sign_in")
    assert (row["actor"], row["result"], row["reason"]) == (console.token_id, "ok", "role admin")
    assert await console.page("/console/", 303) == ""


async def test_wrong_token_is_401_with_the_sign_in_form_and_no_cookie(console):
    r = await console.client.post("/console/sign-in", data={"token": "jna_" + "0" * 40}, allow_redirects=False)
    text = await r.text()
    assert r.status == 401 and "Set-Cookie" not in r.headers
    assert '<p id="error" role="alert">That is not a valid admin token (or it was revoked).</p>' in text
    assert '<input name="token" id="token" type="password"' in text
    assert (await console.client.post("/console/sign-in", data={}, allow_redirects=False)).status == 401


async def test_a_factory_token_cannot_open_the_console(console):
    _, factory = registry.issue_token(console.app[STORAGE], console.id, console.clock(), role="factory")
    r = await console.client.post("/console/sign-in", data={"token": factory}, allow_redirects=False)
    assert r.status == 403 and "Set-Cookie" not in r.headers
    assert "A factory token cannot open the console" in await r.text()


async def test_a_session_of_a_token_that_cannot_view_is_signed_out(console):
    # sign-in refuses such a token; a session row for one (written straight) still opens nothing
    factory_id, _ = registry.issue_token(console.app[STORAGE], console.id, console.clock(), role="factory")
    console.app[STORAGE].add_console_session(hashlib.sha256(b"s1").digest(), console.id, factory_id, "c", 0,
                                             int(console.clock()) + 60)
    r = await console.client.get("/console/fleet", allow_redirects=False, cookies={"janua_console": "s1"})
    assert (r.status, r.headers["Location"]) == (303, "/console/sign-in")


async def test_signed_out_pages_redirect_to_sign_in(console):
    for path in ("/console/fleet", "/console/devices", "/console/audit", "/console/releases", "/console/audit.csv",
                 "/console/", "/console"):
        r = await console.client.get(path, allow_redirects=False)
        assert (r.status, r.headers["Location"]) == (303, "/console/sign-in"), path
    r = await console.client.post("/console/rollouts/ro_1/halt", data={"csrf": "x"}, allow_redirects=False)
    assert r.status == 403 and "You are signed out" in await r.text()


async def test_sign_out_ends_the_session(console):
    await console.sign_in()
    r = await console.post("/console/sign-out", {})
    assert (r.status, r.headers["Location"]) == (303, "/console/sign-in")
    assert 'janua_console=""' in r.headers["Set-Cookie"]
    assert (await console.client.get("/console/fleet", allow_redirects=False)).status == 303


async def test_the_session_cookie_replayed_after_sign_out_is_refused(console):
    await console.sign_in()
    cookie = console.client.session.cookie_jar.filter_cookies(console.client.make_url("/console/"))["janua_console"]
    await console.post("/console/sign-out", {})
    r = await console.client.get("/console/fleet", allow_redirects=False, cookies={"janua_console": cookie.value})
    assert r.status == 303


async def test_a_revoked_token_signs_its_session_out(console):
    await console.sign_in()
    registry.revoke_token(console.app[STORAGE], console.id, console.token_id, console.clock())
    assert (await console.client.get("/console/fleet", allow_redirects=False)).status == 303


async def test_a_session_ends_after_8_hours(console, clock):
    await console.sign_in()
    clock.advance(8 * 3600 - 1)
    await console.page("/console/fleet")
    clock.advance(1)
    assert (await console.client.get("/console/fleet", allow_redirects=False)).status == 303


async def test_the_cookie_is_httponly_samesite_strict_path_console_and_not_secure_over_http(console):
    r = await console.sign_in()
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("janua_console=")
    flags = {f.strip().split("=")[0].lower(): f.strip() for f in cookie.split(";")[1:]}
    assert flags["httponly"] == "HttpOnly" and flags["samesite"] == "SameSite=Strict"
    assert flags["path"] == "Path=/console" and flags["max-age"] == "Max-Age=28800"
    assert "secure" not in flags
    stored = console.app[STORAGE]._db.execute("SELECT id_hash FROM console_sessions").fetchall()
    assert len(stored) == 1 and cookie.split(";")[0].split("=", 1)[1].encode() not in bytes(stored[0][0])


async def test_the_cookie_is_secure_over_tls(config, clock, tmp_path):
    cert, key, _ = ensure_self_signed(tmp_path / "tls.db", "127.0.0.1")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    server = TestServer(create_app(config))
    await server.start_server(ssl=ctx)
    client = TestClient(server)
    try:
        st = client.server.app[STORAGE]
        tenant = registry.create_tenant(st, "acme", clock())
        _, token = registry.issue_token(st, tenant["id"], clock())
        r = await client.post("/console/sign-in", data={"token": token}, allow_redirects=False, ssl=False)
        assert r.status == 303
        assert "Secure" in [f.strip() for f in r.headers["Set-Cookie"].split(";")]
    finally:
        await client.close()


# -- CSRF and roles -----------------------------------------------------------------------------------

@pytest.mark.parametrize("csrf", [None, "", "wrong-token"])
async def test_a_change_without_the_right_csrf_token_is_403_and_changes_nothing(console, csrf):
    dev, = console.serials(["SN-1"])
    await console.sign_in()
    r = await console.post(f"/console/devices/{dev}/lifecycle", {"action": "suspend"}, csrf=csrf)
    assert r.status == 403
    assert '<p id="error" role="alert">CSRF token missing or wrong</p>' in await r.text()
    assert console.app[STORAGE].get_device(bytes.fromhex(dev))["status"] == "active"
    assert console.audit_rows("device.suspend") == []
    ro = console.rollout()
    r = await console.post(f"/console/rollouts/{ro}/halt", {}, csrf=csrf)
    assert r.status == 403 and console.app[STORAGE].get_rollout(console.id, ro)["state"] == "active"


async def test_the_csrf_token_of_another_session_is_refused(console):
    dev, = console.serials(["SN-1"])
    await console.sign_in()
    theirs = console.csrf
    console.client.session.cookie_jar.clear()
    await console.sign_in(console.operator)
    r = await console.post(f"/console/devices/{dev}/lifecycle", {"action": "suspend"}, csrf=theirs)
    assert r.status == 403 and console.app[STORAGE].get_device(bytes.fromhex(dev))["status"] == "active"


async def test_a_viewer_sees_no_change_buttons_and_its_posts_are_403(console):
    dev, = console.serials(["SN-1"])
    ro = console.rollout()
    await console.sign_in(console.viewer)
    text = await console.page(f"/console/devices/{dev}")
    assert 'id="action-' not in text
    assert "A viewer token shows the lifecycle; changing it needs an operator token." in text
    assert f'id="halt-{ro}"' not in await console.page("/console/releases")
    r = await console.post(f"/console/devices/{dev}/lifecycle", {"action": "suspend"})
    assert r.status == 403
    assert "A viewer token cannot make changes (it needs the operator role)." in await r.text()
    r = await console.post(f"/console/rollouts/{ro}/halt", {})
    assert r.status == 403
    assert console.app[STORAGE].get_device(bytes.fromhex(dev))["status"] == "active"
    assert console.app[STORAGE].get_rollout(console.id, ro)["state"] == "active"
    assert (await console.post("/console/sign-out", {})).status == 303     # signing out is not a change


async def test_an_operator_may_change(console):
    dev, = console.serials(["SN-1"])
    await console.sign_in(console.operator)
    r = await console.post(f"/console/devices/{dev}/lifecycle", {"action": "suspend"})
    assert r.status == 303
    assert console.app[STORAGE].get_device(bytes.fromhex(dev))["status"] == "suspended"


# -- pages --------------------------------------------------------------------------------------------

async def test_fleet_page_shows_counts_by_status_health_firmware_and_alerts(console):
    console.serials(["SN-1", "SN-2"], firmware_version="1.4.2")
    dev, = console.serials(["SN-3"])
    console.app[STORAGE].update_device(console.id, bytes.fromhex(dev), {"status": "suspended"})
    await console.sign_in()
    text = await console.page("/console/fleet")
    for section in ("fleet-status", "fleet-health", "fleet-firmware", "fleet-alerts"):
        assert f'<section id="{section}"' in text
    assert "<p>3 devices: 0 online, 3 offline (online: authenticated within the last 10 min); 3 never seen.</p>" in text
    assert '<tr><td>active</td><td><span class="num">2</span></td></tr>' in text
    assert '<tr><td>suspended</td><td><span class="num">1</span></td></tr>' in text
    assert '<tr><td>1.4.2</td><td><span class="num">2</span></td></tr>' in text
    assert '<p class="empty">No open alerts.</p>' in text


async def test_fleet_page_of_an_empty_tenant_says_what_to_do(console):
    await console.sign_in()
    assert "No devices yet: provision one with <code>janua provision</code>." in await console.page("/console/fleet")
    assert "No devices yet: provision one with <code>janua provision</code>." in await console.page("/console/devices")


async def test_devices_page_lists_each_device_with_its_metadata(console):
    a, b = console.serials(["SN-A", "SN-B"], firmware_version="2.0.1", group="lab", tags=["roof", "north"])
    await console.sign_in()
    text = await console.page("/console/devices")
    assert _rows(text) == [a, b]
    assert (f'<tr data-device-id="{a}"><td><a href="/console/devices/{a}">SN-A</a></td><td><code>{a}</code></td>'
            '<td><span class="badge active">active</span></td><td>2.0.1</td><td>lab</td><td>roof, north</td>'
            '<td><span class="muted">never</span></td></tr>') in text
    assert '<form id="device-search"' in text and '<input name="q" id="q" aria-label="Search devices"' in text
    assert 'id="next-page"' not in text


async def test_device_page_shows_each_section_and_the_allowed_actions(console):
    dev, = console.serials(["SN-7"], firmware_version="1.0.0")
    await console.sign_in()
    text = await console.page(f"/console/devices/{dev}")
    for section in ("identity", "lifecycle", "credentials", "auths", "attestation", "health", "audit"):
        assert f'<section id="{section}">' in text
    assert "<title>Device SN-7 · janua console</title>" in text
    assert f"<dt>Device id</dt><dd><code>{dev}</code></dd>" in text
    assert "<dt>Firmware version</dt><dd>1.0.0</dd>" in text
    assert "<dt>Device secret</dt><dd>stored sealed (never shown)</dd>" in text
    assert [m for m in re.findall(r'id="action-(\w+)"', text)] == ["suspend", "decommission", "quarantine"]
    assert 'data-confirm="Decommission SN-7? It can never authenticate again."' in text
    assert "No authentication recorded yet." in text


async def test_device_page_never_shows_a_secret(console):
    (dev, master), = console.provision([{"serial_number": "SN-S"}])
    await console.sign_in()
    text = await console.page(f"/console/devices/{dev}")
    assert master not in text and master.upper() not in text
    sealed = console.app[STORAGE].get_device(bytes.fromhex(dev))["sealed_secret"]
    assert bytes(sealed).hex() not in text


async def test_device_page_of_a_device_of_another_tenant_is_404(console, clock):
    st = console.app[STORAGE]
    other = registry.create_tenant(st, "other", clock())
    out = registry.provision_bulk(st, console.app[SEALER], other["id"], [{"serial_number": "SN-X"}], clock())
    await console.sign_in()
    text = await console.page(f"/console/devices/{out['results'][0]['device_id']}", 404)
    assert '<p id="error" role="alert">no such device</p>' in text


async def test_releases_page_shows_the_rollout_with_its_phase_and_halt_button(console):
    ro = console.rollout()
    await console.sign_in()
    text = await console.page("/console/releases")
    assert _rows(text, "data-rollout-id") == [ro]
    assert f'<button type="submit" class="danger" id="halt-{ro}">Halt</button>' in text
    assert "<td>1/4 (1% eligible)</td><td>0 confirmed of 0 outcomes</td><td>0 (0.0%)</td>" in text
    assert "<td>sensor-app</td><td>1.2.0</td><td>3</td><td>1234</td>" in text


async def test_releases_page_without_releases_says_what_to_do(console):
    await console.sign_in()
    text = await console.page("/console/releases")
    assert "No rollouts yet: start one with <code>janua ota rollout</code> after publishing a release." in text


async def test_audit_page_lists_rows_newest_first_with_filters_and_the_csv_link(console):
    dev, = console.serials(["SN-1"])
    await console.sign_in()
    await console.post(f"/console/devices/{dev}/lifecycle", {"action": "suspend", "reason": "lost"})
    text = await console.page("/console/audit")
    assert re.search(r'<tr data-seq="\d+"><td>\d+</td><td><time datetime="2026-01-01T00:00:00Z">'
                     r'2026-01-01 00:00:00 UTC</time></td><td>admin</td><td><a href="/console/devices/' + dev
                     + r'"><code>' + dev + r"</code></a></td><td>" + console.token_id
                     + r'</td><td>device.suspend</td><td></td><td></td><td><span class="badge ok">ok</span></td>'
                     r"<td>active -&gt; suspended: lost</td></tr>", text)
    assert '<a id="export-csv" href="/console/audit.csv">Export CSV</a>' in text
    text = await console.page(f"/console/audit?device={dev}&kind=admin")
    assert re.findall(r"<td>(device\.\w+)</td>", text) == ["device.suspend", "device.provision"]
    assert "console.sign_in" in await console.page("/console/audit?kind=admin")
    assert "console.sign_in" not in await console.page(f"/console/audit?device={dev}")
    assert "No audit row matches" in await console.page("/console/audit?result=nothing")
    assert f'<a id="export-csv" href="/console/audit.csv?device={dev}&amp;kind=admin">' in text
    assert "device must be a device id" in await console.page("/console/audit?device=zz", 400)


# -- devices: search and pages -------------------------------------------------------------------------

async def test_search_by_serial_finds_the_one_device_among_2000(console):
    ids = console.serials([f"SN-{i:05d}" for i in range(2000)])
    await console.sign_in()
    text = await console.page("/console/devices?q=SN-01234")
    assert _rows(text) == [ids[1234]]
    text = await console.page("/console/devices?q=SN-0123")
    assert _rows(text) == [ids[i] for i in range(1230, 1240)]
    text = await console.page("/console/devices?q=" + ids[77][:12])
    assert ids[77] in _rows(text)
    assert "No device matches" in await console.page("/console/devices?q=nothing-like-it")


async def test_search_by_a_prefix_of_non_ascii_serials(console):
    ids = console.serials(["Zürich-1", "Zürich-2", "Zürich~9", "Zurich-3", "Zürichsee"])
    await console.sign_in()
    assert _rows(await console.page("/console/devices?q=Zürich")) == [ids[0], ids[1], ids[4], ids[2]]
    assert _rows(await console.page("/console/devices?q=Z%C3%BCrich~")) == [ids[2]]


async def test_filters_by_status_firmware_tag_group_and_online(console, clock):
    a, = console.serials(["SN-A"], firmware_version="1.0", group="g1", tags=["t1"])
    b, = console.serials(["SN-B"], firmware_version="2.0", group="g2", tags=["t2"])
    c, = console.serials(["SN-C"])
    st = console.app[STORAGE]
    st.update_device(console.id, bytes.fromhex(c), {"status": "suspended"})
    st.record_auth([(0, int(clock()), bytes.fromhex(b))], [], [])
    await console.sign_in()
    assert _rows(await console.page("/console/devices?status=suspended")) == [c]
    assert _rows(await console.page("/console/devices?firmware=2.0")) == [b]
    assert _rows(await console.page("/console/devices?tag=t1")) == [a]
    assert _rows(await console.page("/console/devices?group=g2")) == [b]
    assert _rows(await console.page("/console/devices?online=yes")) == [b]
    assert _rows(await console.page("/console/devices?online=no")) == [a, c]
    assert _rows(await console.page("/console/devices?sort=last_seen")) == [b, a, c]
    assert _rows(await console.page("/console/devices?sort=status")) == [a, b, c]
    assert "status must be one of" in await console.page("/console/devices?status=lost", 400)
    assert "cursor must be" in await console.page("/console/devices?cursor=%%%", 400)


@pytest.mark.parametrize("sort", ["serial", "status", "last_seen"])
async def test_cursor_pages_return_each_device_once(console, sort, clock):
    ids = console.serials([f"SN-{i:03d}" for i in range(120)])
    st = console.app[STORAGE]
    for i, hx in enumerate(ids):
        if i % 3 == 0:
            st.update_device(console.id, bytes.fromhex(hx), {"status": "suspended"})
        if i % 4 == 0:
            st.record_auth([(0, int(clock()) - i % 7, bytes.fromhex(hx))], [], [])
    await console.sign_in()
    seen, path, pages = [], f"/console/devices?sort={sort}", 0
    while path:
        text = await console.page(path)
        seen += _rows(text)
        pages += 1
        m = re.search(r'<a id="next-page" href="([^"]+)">', text)
        path = m.group(1).replace("&amp;", "&") if m else None
    assert pages == 3 and len(seen) == 120 and sorted(seen) == sorted(ids)


# -- changes ------------------------------------------------------------------------------------------

async def test_suspend_changes_the_status_writes_the_audit_row_and_the_next_auth_is_refused(console, clock):
    (dev, master), = console.provision([{"serial_number": "SN-1"}])
    key = keys.derive_key(bytes.fromhex(master), keys.LABEL_BINAUTH)
    ts = [int(clock())]

    async def auth():
        ts[0] += 1
        req = encode_request(key, bytes.fromhex(dev), ts[0])
        r = await console.client.post("/v1/binauth", data=req)
        return decode_reply(key, req, await r.read())["status"]

    assert await auth() == OK                     # cached by binary auth
    await console.sign_in()
    r = await console.post(f"/console/devices/{dev}/lifecycle", {"action": "suspend", "reason": "stolen"})
    assert (r.status, r.headers["Location"]) == (303, f"/console/devices/{dev}")
    assert console.app[STORAGE].get_device(bytes.fromhex(dev))["status"] == "suspended"
    row, = console.audit_rows("device.suspend")
    assert (row["kind"], row["actor"], row["device_id"], row["result"], row["reason"]) == (
        "admin", console.token_id, dev, "ok", "active -> suspended: stolen")
    assert await auth() == NOT_ACTIVE
    text = await console.page(f"/console/devices/{dev}")
    assert '<p id="flash" role="status">Suspend: done. The device is suspended.</p>' in text
    assert re.findall(r'id="action-(\w+)"', text) == ["resume", "decommission", "quarantine"]
    assert 'id="flash"' not in await console.page(f"/console/devices/{dev}")     # shown once


async def test_quarantine_and_a_refused_action_is_flashed(console):
    dev, = console.serials(["SN-1"])
    await console.sign_in()
    await console.post(f"/console/devices/{dev}/lifecycle", {"action": "quarantine"})
    assert console.app[STORAGE].get_device(bytes.fromhex(dev))["quarantined"] is True
    r = await console.post(f"/console/devices/{dev}/lifecycle", {"action": "resume"})
    assert r.status == 303
    text = await console.page(f"/console/devices/{dev}")
    assert ('<p id="flash" role="status">Refused: cannot resume a device that is active '
            "(allowed: decommission, suspend)</p>") in text
    assert [r["result"] for r in console.audit_rows("device.resume")] == ["error"]
    assert 'id="action-release"' in text


async def test_halt_and_resume_a_rollout(console):
    ro = console.rollout()
    await console.sign_in(console.operator)
    r = await console.post(f"/console/rollouts/{ro}/halt", {"reason": "bad batch"})
    assert (r.status, r.headers["Location"]) == (303, "/console/releases")
    got = console.app[STORAGE].get_rollout(console.id, ro)
    assert (got["state"], got["halt_reason"]) == ("halted", f"by {console.operator_id}: bad batch")
    text = await console.page("/console/releases")
    assert f'<p id="flash" role="status">Rollout {ro} halted.</p>' in text
    assert f'<button type="submit" id="resume-{ro}">Resume</button>' in text
    assert (await console.post(f"/console/rollouts/{ro}/resume", {})).status == 303
    assert console.app[STORAGE].get_rollout(console.id, ro)["state"] == "active"
    assert [r["reason"] for r in console.audit_rows("ota.rollout.resume")] == [ro]
    await console.post(f"/console/rollouts/{ro}/resume", {})
    assert "Refused: the rollout is active" in await console.page("/console/releases")


# -- audit CSV ----------------------------------------------------------------------------------------

async def test_audit_csv_has_the_header_and_the_rows(console):
    dev, = console.serials(["=SN-1"])
    await console.sign_in()
    await console.post(f"/console/devices/{dev}/lifecycle", {"action": "suspend", "reason": "a, \"b\""})
    r = await console.client.get(f"/console/audit.csv?device={dev}")
    assert r.status == 200 and r.headers["Content-Type"] == "text/csv; charset=utf-8"
    lines = (await r.text()).split("\r\n")
    assert lines[0] == "seq,time,kind,device_id,actor,action,transport,source,result,reason"
    assert re.fullmatch(r'\d+,2026-01-01T00:00:00Z,admin,' + dev + "," + console.token_id
                        + r',device\.suspend,,,ok,"active -> suspended: a, ""b"""', lines[1])
    assert re.fullmatch(r"\d+,2026-01-01T00:00:00Z,admin," + dev + r",api,device\.provision,,,ok,1 device\(s\) created",
                        lines[2])
    assert lines[3:] == [""]
    r = await console.client.get("/console/audit.csv?kind=admin")
    body = await r.text()
    assert "tenant.create" in body and "console.sign_in" in body


async def test_audit_csv_cells_a_spreadsheet_would_run_get_an_apostrophe(console):
    await console.sign_in()
    st = console.app[STORAGE]
    st.add_audit([(int(console.clock()), console.id, "admin", None, "=cmd|' /C calc'!A0", "x.y", None, None, "ok",
                   "+1")])
    lines = (await (await console.client.get("/console/audit.csv?kind=admin")).text()).split("\r\n")
    assert re.fullmatch(r"\d+,2026-01-01T00:00:00Z,admin,,'=cmd\|' /C calc'!A0,x\.y,,,ok,'\+1", lines[1])


# -- escaping and headers -----------------------------------------------------------------------------

async def test_a_serial_with_markup_is_escaped_on_every_page(console):
    evil = '<script>alert("x")</script>'
    dev, = console.serials([evil], group="<b>g</b>", tags=["<i>"], firmware_version="\"'><img src=x>")
    await console.sign_in()
    await console.post(f"/console/devices/{dev}/lifecycle", {"action": "suspend", "reason": "<script>r</script>"})
    for path in ("/console/devices", f"/console/devices/{dev}", "/console/audit", "/console/fleet",
                 "/console/devices?q=%3Cscript%3E"):
        text = await console.page(path)
        assert "<script>alert" not in text and "<b>g" not in text and "<img src" not in text and "<i>" not in text
        assert "<script>r" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in await console.page("/console/devices")
    text = await console.page("/console/devices?q=%22%3E%3Cscript%3E")
    assert 'value="&quot;&gt;&lt;script&gt;"' in text


async def test_every_console_response_has_the_security_headers(console):
    dev, = console.serials(["SN-1"])
    await console.sign_in()
    for method, path in (("GET", "/console/sign-in"), ("GET", "/console/fleet"), ("GET", f"/console/devices/{dev}"),
                         ("GET", "/console/audit.csv"), ("GET", "/console/static/console.js"),
                         ("POST", "/console/rollouts/ro_0/halt")):
        r = await console.client.request(method, path, allow_redirects=False)
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" == (await console.client.get("/console/fleet")).headers["Cache-Control"]


async def test_static_files_are_served_with_cache_control_and_pages_have_no_inline_script(console):
    r = await console.client.get("/console/static/console.css")
    assert r.status == 200 and r.headers["Cache-Control"] == "public, max-age=86400"
    assert r.headers["Content-Type"] == "text/css; charset=utf-8"
    assert (await console.client.get("/console/static/nothing.js")).status == 404
    await console.sign_in()
    text = await console.page("/console/fleet")
    assert re.findall(r"<script[^>]*>", text) == [re.search(r'<script src="/console/static/console\.js\?v=\w+" defer>',
                                                            text).group(0)]
    assert not re.search(r"<[^>]+\son\w+=", text)                  # no inline event handler either


async def test_every_form_of_a_page_carries_the_csrf_token(console):
    dev, = console.serials(["SN-1"])
    console.rollout()
    await console.sign_in()
    for path in (f"/console/devices/{dev}", "/console/releases", "/console/fleet"):
        text = await console.page(path)
        posts = re.findall(r'<form[^>]*method="post".*?</form>', text)
        assert posts and all(CSRF.search(f).group(1) == console.csrf for f in posts)
