"""HTML building for the console's pages: every value reaches the page through `esc` (or `attr`), the
only way text from the database or the request is written (docs/console.md "Security model"). Pages are
plain strings; the layout adds the navigation, the flash message and the sign-out form."""

import hashlib
import html
import time
from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}
STATIC = {name: (STATIC_DIR / name).read_bytes() for name in STATIC_TYPES}
# the files' version in their URLs: a new file is a new URL, so they can be cached for long
STATIC_VERSION = hashlib.sha256(b"".join(STATIC[n] for n in sorted(STATIC))).hexdigest()[:12]

NAV = (("fleet", "/console/fleet", "Fleet"), ("devices", "/console/devices", "Devices"),
       ("releases", "/console/releases", "Releases"), ("audit", "/console/audit", "Audit"))


def esc(value):
    """Text for an HTML element's content or a quoted attribute value: & < > " ' escaped; None is empty."""
    return "" if value is None else html.escape(str(value), quote=True)


def time_tag(ts):
    """<time> of unix seconds: ISO UTC in datetime (console.js shows it local and relative), UTC text; "never"."""
    if not ts:
        return '<span class="muted">never</span>'
    t = time.gmtime(int(ts))
    return (f'<time datetime="{time.strftime("%Y-%m-%dT%H:%M:%SZ", t)}">'
            f'{time.strftime("%Y-%m-%d %H:%M:%S UTC", t)}</time>')


def csrf_field(csrf):
    return f'<input type="hidden" name="csrf" value="{esc(csrf)}">'


def table(table_id, caption, headers, rows, row_attrs=None, empty=""):
    """A <table> inside a horizontally scrolling wrapper; `rows`: lists of cell HTML (already escaped);
    `row_attrs`: for each row the attribute text of its <tr>. With no rows: an empty body, then the `empty`
    message (HTML, written by the page) in <p class="empty" id="TABLE_ID-empty">."""
    note = f'<p class="empty" id="{table_id}-empty">{empty}</p>' if not rows and empty else ""
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h in headers)
    body = "".join(f"<tr{(' ' + row_attrs[i]) if row_attrs else ''}>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>"
                   for i, r in enumerate(rows))
    return (f'<div class="scroll"><table id="{table_id}"><caption>{esc(caption)}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{note}")


def definitions(section_id, pairs):
    """<dl> of (term, value HTML) pairs."""
    return f'<dl id="{section_id}-list">' + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"


def _head(title):
    v = STATIC_VERSION
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)} · janua console</title>"
            f'<link rel="stylesheet" href="/console/static/console.css?v={v}">'
            f'<script src="/console/static/console.js?v={v}" defer></script></head>')


def layout(title, body, session=None, current=None, flash=None):
    """A whole page. With a session: the header (tenant, role, navigation, sign-out) and its flash message."""
    if session is None:
        return f'{_head(title)}<body class="bare"><main id="main">{body}</main></body></html>'
    cur = ' aria-current="page"'
    links = "".join(f'<li><a href="{href}"{cur if key == current else ""}>{label}</a></li>' for key, href, label in NAV)
    header = ('<header class="top"><a class="brand" href="/console/fleet">janua</a>'
              f'<span class="who">{esc(session["tenant_name"])} · {esc(session["role"])}</span>'
              '<nav aria-label="Console"><button type="button" class="nav-toggle" aria-expanded="false" '
              f'aria-controls="nav-links">Menu</button><ul id="nav-links">{links}</ul></nav>'
              f'<form method="post" action="/console/sign-out" class="sign-out">{csrf_field(session["csrf"])}'
              '<button type="submit" id="sign-out">Sign out</button></form></header>')
    note = f'<p id="flash" role="status">{esc(flash)}</p>' if flash else ""
    return f"{_head(title)}<body>{header}<main id=\"main\"><h1>{esc(title)}</h1>{note}{body}</main></body></html>"
