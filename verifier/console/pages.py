"""The console's page bodies (docs/console.md "Pages"), from data the routes read: pure functions to HTML text,
every value through esc(). Element ids are the contract of the browser tests (/work/notes/console_spec.md is
kept in docs/console.md)."""

from urllib.parse import urlencode

from verifier.console.html import csrf_field, definitions, esc, table, time_tag
from verifier.fleet.core import HEALTH_BUCKETS
from verifier.registry.model import STATUSES, TRANSITIONS

DEVICE_ACTIONS = ("suspend", "resume", "decommission")


def sign_in(error=None):
    err = f'<p id="error" role="alert">{esc(error)}</p>' if error else ""
    return ('<h1>janua console</h1>' + err +
            '<form id="sign-in" method="post" action="/console/sign-in">'
            '<label for="token">Admin token</label>'
            '<input name="token" id="token" type="password" autocomplete="current-password" required>'
            '<button type="submit" id="sign-in-button">Sign in</button></form>'
            '<p class="muted">A tenant admin token (jna_…) of role viewer, operator or admin: '
            '<code>janua tenant token</code> issues one.</p>')


def _badge(word):
    return f'<span class="badge {esc(word)}">{esc(word)}</span>'


def _counts(section_id, caption, items):
    return table(section_id + "-table", caption, ("", "Devices"),
                 [[esc(k), f'<span class="num">{esc(v)}</span>'] for k, v in items])


# -- fleet ----------------------------------------------------------------------------------------------

def fleet(doc):
    total = doc["totals"]["devices"]
    if not total:
        empty = '<p class="empty">No devices yet: provision one with <code>janua provision</code>.</p>'
    else:
        empty = ""
    conn = doc["connectivity"]
    status = ('<section id="fleet-status" aria-labelledby="h-status"><h2 id="h-status">Devices by status</h2>'
              f'<p>{esc(total)} devices: {esc(conn["online"])} online, {esc(conn["offline"])} offline '
              f'(online: authenticated within the last {esc(conn["online_window_s"] // 60)} min); '
              f'{esc(conn["never_seen"])} never seen.</p>'
              + _counts("fleet-status", "Lifecycle status", [(s, doc["by_status"].get(s, 0)) for s in STATUSES])
              + "</section>")
    health = ('<section id="fleet-health" aria-labelledby="h-health"><h2 id="h-health">Health</h2>'
              + _counts("fleet-health", "Health buckets", [(b, doc["health"].get(b, 0)) for b in HEALTH_BUCKETS])
              + "</section>")
    fw = doc["firmware_versions"]
    firmware = ('<section id="fleet-firmware" aria-labelledby="h-firmware"><h2 id="h-firmware">Firmware versions</h2>'
                + (_counts("fleet-firmware", "Devices by reported firmware version", fw.items()) if fw else
                   '<p class="empty">No firmware version reported yet: boards report it in their health reports '
                   'or metadata.</p>') + "</section>")
    n = doc["alerts"]["open"]
    alerts = ('<section id="fleet-alerts" aria-labelledby="h-alerts"><h2 id="h-alerts">Alerts</h2>'
              + (f'<p><strong>{esc(n)}</strong> open alert{"s" if n != 1 else ""} '
                 '(<code>GET /v1/alerts</code>, <code>janua alerts</code>).</p>' if n else
                 '<p class="empty">No open alerts.</p>') + "</section>")
    perf = doc["performance"]
    rate = "—" if perf["auth_success_rate"] is None else f"{perf['auth_success_rate']:.1%}"
    perf_html = ('<section id="fleet-performance"><h2>Last hour</h2>' + definitions("fleet-performance", [
        ("Authentications", esc(perf["auth_attempts"])), ("Failures", esc(perf["auth_failures"])),
        ("Success rate", esc(rate))]) + "</section>")
    return empty + f'<div class="cards">{status}{health}{firmware}{alerts}{perf_html}</div>'


# -- devices --------------------------------------------------------------------------------------------

def _select(name, label, options, chosen):
    opts = "".join(f'<option value="{esc(v)}"{" selected" if v == chosen else ""}>{esc(t)}</option>'
                   for v, t in options)
    return f'<label for="f-{name}">{esc(label)}<select name="{name}" id="f-{name}">{opts}</select></label>'


def _input(name, label, value, **extra):
    more = "".join(f' {k.replace("_", "-")}="{esc(v)}"' for k, v in extra.items())
    return (f'<label for="f-{name}">{esc(label)}<input name="{name}" id="f-{name}" value="{esc(value)}"{more}>'
            '</label>')


def devices(rows, f, next_url, online_since):
    search = ('<form id="device-search" class="filters" method="get" action="/console/devices" role="search">'
              '<label for="q">Serial or id<input name="q" id="q" aria-label="Search devices" '
              f'value="{esc(f["q"])}" placeholder="serial or id prefix"></label>'
              + _select("status", "Status", [("", "any")] + [(s, s) for s in STATUSES], f["status"] or "")
              + _input("firmware", "Firmware", f["firmware"])
              + _select("online", "Online", [("", "any"), ("yes", "online"), ("no", "offline")], f["online"] or "")
              + _input("tag", "Tag", f["tag"]) + _input("group", "Group", f["group"])
              + _select("sort", "Sort by", [("serial", "serial"), ("status", "status"), ("last_seen", "last seen")],
                        f["sort"] or "serial")
              + '<button type="submit" id="search-button">Search</button></form>')
    filtered = any(v for k, v in f.items() if k != "sort")
    empty = ('No device matches: <a href="/console/devices">show all devices</a>.' if filtered else
             "No devices yet: provision one with <code>janua provision</code>.")
    out, attrs = [], []
    for d in rows:
        hx, md = d["id"].hex(), d["metadata"] if isinstance(d["metadata"], dict) else {}
        status = _badge(d["status"]) + (" " + _badge("quarantined") if d["quarantined"] else "") + (
            " " + _badge("compromised") if d["compromised"] else "")
        seen = d["last_authenticated_at"]
        online = seen is not None and seen >= online_since
        tags = md.get("tags") if isinstance(md.get("tags"), list) else []
        out.append([f'<a href="/console/devices/{hx}">{esc(d["serial_number"])}</a>', f"<code>{hx}</code>", status,
                    esc(md.get("firmware_version")), esc(md.get("group")), esc(", ".join(map(str, tags))),
                    time_tag(seen) + (' <span class="badge ok">online</span>' if online else "")])
        attrs.append(f'data-device-id="{hx}"')
    pager = f'<p class="pager"><a id="next-page" href="{esc(next_url)}">Next page</a></p>' if next_url else ""
    return search + table("devices", "Devices", ("Serial", "Device id", "Status", "Firmware", "Group", "Tags",
                                                "Last seen"), out, attrs, empty) + pager


# -- one device -----------------------------------------------------------------------------------------

def _allowed_actions(view):
    acts = [a for a in DEVICE_ACTIONS if (view["status"], a) in TRANSITIONS]
    acts.append("release" if view["security"]["quarantined"] else "quarantine")
    return acts


def _action_form(hx, action, csrf, serial):
    danger = ' class="danger"' if action in ("decommission", "quarantine", "suspend") else ""
    confirm = (f' data-confirm="Decommission {esc(serial)}? It can never authenticate again."'
               if action == "decommission" else "")
    return (f'<form class="inline" method="post" action="/console/devices/{hx}/lifecycle"{confirm}>'
            f'{csrf_field(csrf)}<input type="hidden" name="action" value="{action}">'
            f'<label for="reason-{action}">Reason<input name="reason" id="reason-{action}" maxlength="500"></label>'
            f'<button type="submit" id="action-{action}"{danger}>'
            f'{action.capitalize()}</button></form>')


def _chart(history, field, label):
    """A small inline SVG line of one numeric health field over the history (oldest first)."""
    pts = [(h["received_at"], h["fields"].get(field)) for h in history]
    pts = [(t, v) for t, v in pts if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(pts) < 2:
        return ""
    t0, t1 = pts[0][0], pts[-1][0]
    lo, hi = min(v for _, v in pts), max(v for _, v in pts)
    w, h = 300, 60
    xy = " ".join(f"{(t - t0) / ((t1 - t0) or 1) * w:.1f},{h - 4 - (v - lo) / ((hi - lo) or 1) * (h - 8):.1f}"
                  for t, v in pts)
    return (f'<figure><svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{esc(label)}: '
            f'{esc(lo)} to {esc(hi)} over the last 24 h"><line x1="0" y1="{h - 1}" x2="{w}" y2="{h - 1}"/>'
            f'<polyline points="{xy}"/></svg><figcaption>{esc(label)}: {esc(pts[-1][1])} now, {esc(lo)}–{esc(hi)} '
            f'in the last 24 h</figcaption></figure>')


def _audit_rows(rows, with_device=True):
    out, attrs = [], []
    for r in rows:
        dev = r["device_id"]
        reason = r["reason"] if not r.get("detail") else f"{r['reason'] or ''}: {r['detail']}"
        cells = [esc(r["seq"]), time_tag(r["ts"]), esc(r["kind"])]
        if with_device:
            cells.append(f'<a href="/console/devices/{esc(dev)}"><code>{esc(dev)}</code></a>' if dev and len(dev) == 16
                         else esc(dev))
        cells += [esc(r["actor"]), esc(r["action"]), esc(r["transport"]), esc(r["source"]), _badge(r["result"]),
                  esc(reason)]
        out.append(cells)
        attrs.append(f'data-seq="{esc(r["seq"])}"')
    return out, attrs


def device(data, s, now):
    v = data["view"]
    hx, md, sec = v["device_id"], v["metadata"], v["security"]
    identity = ('<section id="identity"><h2>Identity</h2>' + definitions("identity", [
        ("Device id", f"<code>{esc(hx)}</code>"), ("Serial number", esc(v["serial_number"])),
        ("Manufacturer", esc(v["manufacturer_id"])), ("Model", esc(v["model_id"])),
        *((k.replace("_", " ").capitalize(), esc(", ".join(map(str, md[k])) if isinstance(md[k], list) else md[k]))
          for k in sorted(md)),
        ("Provisioned", time_tag(v["provisioned_at"])), ("Last seen", time_tag(v["last_seen_at"]))]) + "</section>")
    if s["can_change"]:
        forms = "".join(_action_form(hx, a, s["csrf"], v["serial_number"]) for a in _allowed_actions(v))
    else:
        forms = (f'<p class="muted">A {esc(s["role"])} token shows the lifecycle; changing it needs an operator '
                 'token.</p>')
    lifecycle = ('<section id="lifecycle"><h2>Lifecycle</h2>' + definitions("lifecycle", [
        ("Status", _badge(v["status"])), ("Since", time_tag(v["status_changed_at"])),
        ("Quarantined", "yes" if sec["quarantined"] else "no"), ("Compromised", "yes" if sec["compromised"] else "no"),
        ("Trust level", esc(sec["trust_level"]))]) + forms + "</section>")
    certs = [[esc(c["serial"]), esc(c["key_type"]), time_tag(c["not_after"]),
              "revoked " + time_tag(c["revoked_at"]) if c["revoked_at"] else ("held" if c.get("held_at") else "valid")]
             for c in data["certificates"]]
    credentials = ('<section id="credentials"><h2>Credentials</h2>' + definitions("credentials", [
        ("Type", esc(v["credential"]["type"])),
        ("Device secret", "stored sealed (never shown)" if v["credential"]["present"] else "none"),
        ("DTLS PSK generation", esc(v["psk"]["generation"])), ("DTLS PSK expires", time_tag(v["psk"]["expires_at"])),
        ("MQTT password", "set (stored hashed)" if data["mqtt_password"] else "not set")])
        + table("certificates", "X.509 certificates", ("Serial", "Key", "Expires", "State"), certs,
                empty="No X.509 certificate issued.") + "</section>")
    auth_rows = [[time_tag(r["ts"]), esc(r["transport"]), esc(r["source"]), _badge(r["result"]),
                  esc(r["reason"])] for r in data["auths"]]
    auths = ('<section id="auths"><h2>Last authentications</h2>'
             + table("auths-table", "Authentications (audit trail)", ("Time", "Transport", "Source", "Result",
                                                                    "Reason"), auth_rows,
                     empty="No authentication recorded yet.") + "</section>")
    att = data["attestation"]
    hist = [[time_tag(r["created"]), _badge(r["status"]), esc(r["trust_level"])] for r in att["history"]]
    attestation = ('<section id="attestation"><h2>Trust and attestation</h2>' + definitions("attestation", [
        ("Status", _badge(att["attestation_status"])), ("Trust level", esc(att["trust_level"])),
        ("Challenge pending", "yes" if att["challenge"] else "no")])
        + table("attestation-history", "Appraisals", ("Time", "Status", "Trust level"), hist,
                empty="No attestation yet.") + "</section>")
    hd = data["health"]
    charts = _chart(data["history"], "heap_free", "Free heap (bytes)") + _chart(data["history"], "rssi", "RSSI (dBm)")
    recs = "".join(f"<li>{esc(r)}</li>" for r in hd["recommendations"])
    health = ('<section id="health"><h2>Health</h2>' + definitions("health", [
        ("Bucket", _badge(hd["bucket"])), ("Score", esc(hd["score"]) if hd["score"] is not None else "—"),
        ("Last report", time_tag(hd["received_at"])), ("App version", esc(hd["app_version"]))])
        + (f"<ul>{recs}</ul>" if recs else "")
        + (charts or '<p class="empty">No health history in the last 24 h: boards send health reports with '
                     'their authentications (docs/health.md).</p>') + "</section>")
    rows, attrs = _audit_rows(data["audit"], with_device=False)
    audit = ('<section id="audit"><h2>Audit trail</h2>'
             + table("device-audit", "This device's latest audit rows", (
                 "Seq", "Time", "Kind", "Actor", "Action", "Transport", "Source", "Result", "Reason"), rows, attrs,
                 empty="No audit rows for this device.")
             + f'<p class="muted">Among the tenant\'s latest {data["audit_window"]:,} audit rows. '
             f'<a href="/console/audit?{urlencode({"device": hx})}">All of its audit rows</a></p></section>')
    return identity + lifecycle + credentials + auths + attestation + health + audit


# -- releases -------------------------------------------------------------------------------------------

def releases(rels, ros, names, s):
    out, attrs = [], []
    for ro in ros:
        rid = ro["id"]
        counts = ro["counts"]
        phase = f'{ro["phase"]}/{len(ro["phases"])} ({ro["eligible_percent"]}% eligible)'
        progress = f'{counts.get("confirmed", 0)} confirmed of {ro["outcomes"]} outcomes'
        fails = f'{ro["failed"]} ({ro["failure_rate"]:.1%})'
        act = ""
        if s["can_change"] and ro["state"] == "active":
            act = (f'<form class="inline" method="post" action="/console/rollouts/{esc(rid)}/halt">'
                   f'{csrf_field(s["csrf"])}<label for="reason-{esc(rid)}">Reason<input name="reason" '
                   f'id="reason-{esc(rid)}" maxlength="500"></label>'
                   f'<button type="submit" class="danger" id="halt-{esc(rid)}">Halt</button></form>')
        elif s["can_change"] and ro["state"] in ("pending", "halted"):
            act = (f'<form class="inline" method="post" action="/console/rollouts/{esc(rid)}/resume">'
                   f'{csrf_field(s["csrf"])}<button type="submit" id="resume-{esc(rid)}">'
                   f'{"Start" if ro["state"] == "pending" else "Resume"}</button></form>')
        note = esc(ro["halt_reason"] or ro["held"] or "")
        out.append([f"<code>{esc(rid)}</code>", esc(names.get(ro["release_id"], ro["release_id"])),
                    _badge(ro["state"]), esc(phase), esc(progress), esc(fails), note, act])
        attrs.append(f'data-rollout-id="{esc(rid)}"')
    rollouts_html = ("<h2>Rollouts</h2>" + table(
        "rollouts", "Rollouts, newest first", ("Rollout", "Release", "State", "Phase", "Cohort progress", "Failures",
                                               "Note", ""), out, attrs,
        empty="No rollouts yet: start one with <code>janua ota rollout</code> after publishing a release."))
    rel_rows = [[f"<code>{esc(r['id'])}</code>", esc(r["kind"]), esc(r["name"]), esc(r["version"]),
                 esc(r["counter"]), esc(r["size"]), time_tag(r["created"])] for r in rels]
    releases_html = ("<h2>Releases</h2>" + table(
        "releases", "Published releases, newest first", ("Release", "Kind", "Name", "Version", "Counter", "Bytes",
                                                         "Published"), rel_rows,
        empty="No releases yet: publish a signed bundle with <code>janua ota publish</code> (docs/ota.md)."))
    return rollouts_html + releases_html


# -- audit ----------------------------------------------------------------------------------------------

def audit(rows, f, next_url, csv_url):
    form = ('<form id="audit-filters" class="filters" method="get" action="/console/audit">'
            + _input("device", "Device id", f["device"], maxlength="16")
            + _input("kind", "Kind", f["kind"], placeholder="admin, auth, …")
            + _input("result", "Result", f["result"], placeholder="ok, OK, REFUSED, error")
            + '<button type="submit" id="audit-filter-button">Filter</button></form>'
            f'<p><a id="export-csv" href="{esc(csv_url)}">Export CSV</a></p>')
    cells, attrs = _audit_rows(rows)
    filtered = any(f.values())
    empty = ('No audit row matches: <a href="/console/audit">show all</a>.' if filtered else
             "No audit rows yet: every admin change and authentication is recorded here.")
    pager = f'<p class="pager"><a id="next-page" href="{esc(next_url)}">Older rows</a></p>' if next_url else ""
    return form + table("audit", "Audit rows, newest first", (
        "Seq", "Time", "Kind", "Device", "Actor", "Action", "Transport", "Source", "Result", "Reason"), cells, attrs,
        empty) + pager
