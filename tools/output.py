"""How the CLI prints data, shared by every command that does (device, audit, ota list, ...).

`-o json` prints the API's objects as they came (stable for scripts); `-o table`, the default, prints
aligned columns or "key: value" lines with readable times: the local time to the minute plus how long
ago (or how soon), "never" for a time that is missing. A table wider than the terminal has its widest
columns cut (never the first: the id), each cut cell ending with "…"; output that goes to no terminal is not cut (unless
$COLUMNS says how wide it may be).
"""

import json
import os
import sys
import time
from datetime import datetime

FORMATS = ("table", "json", "text")     # text: the former name of table, still accepted
ELLIPSIS = "…"
MIN_CUT = 8                             # a cut column keeps at least this many characters (or its header's)


def add_output_argument(parser):
    parser.add_argument("-o", "--output", choices=FORMATS, default="table",
                        help="table for people (the default), json for scripts (the API's objects)")


def wants_json(args):
    return getattr(args, "output", "table") == "json"


def print_json(doc):
    print(json.dumps(doc, indent=2, sort_keys=True))


def note(text):
    """A line for the person at the terminal, on stderr (stdout stays the data)."""
    print(f"janua: {text}", file=sys.stderr, flush=True)


# -- times ------------------------------------------------------------------------------------

def ago(ts, now):
    """How far unix time `ts` is from `now`, in the largest unit that fits: "3 min ago", "in 2 h",
    "just now" (under a minute either way); minutes under an hour, hours under two days, then days."""
    d = int(ts - now)
    past, d = d <= 0, abs(d)
    if d < 60:
        return "just now"
    if d < 3600:
        n, unit = d // 60, "min"
    elif d < 2 * 86400:
        n, unit = d // 3600, "h"
    else:
        n, unit = d // 86400, "d"
    return f"{n} {unit} ago" if past else f"in {n} {unit}"


def when(ts, now=None, tz=None):
    """A unix time for people: "2026-12-03 09:14 (3 min ago)" in the local time zone (or `tz`, a
    tzinfo); "never" for None."""
    if ts is None:
        return "never"
    now = time.time() if now is None else now
    local = datetime.fromtimestamp(ts, tz) if tz is not None else datetime.fromtimestamp(ts)
    return f"{local:%Y-%m-%d %H:%M} ({ago(ts, now)})"


# -- tables -----------------------------------------------------------------------------------

def terminal_width():
    """$COLUMNS when set, else the terminal's width, else None (not a terminal: no limit)."""
    cols = os.environ.get("COLUMNS", "")
    if cols.isdigit() and int(cols) > 0:
        return int(cols)
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns if sys.stdout.isatty() else None
    except (OSError, ValueError):
        return None


def cut(text, width):
    return text if len(text) <= width else text[:max(width - 1, 0)] + ELLIPSIS


def table(headers, rows, width=None, cut_first=()):
    """Aligned columns (two spaces apart) under upper-case headers, as one string. `rows` are lists
    of cells (None prints "-"). With `width`, columns are cut until the line fits: those of `cut_first`
    (indexes, e.g. free text), one after the other, then the widest; none below MIN_CUT or its header,
    and never the first column (the row's name, such as an id). The last column is not padded."""
    headers = [h.upper() for h in headers]
    rows = [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    if width is not None:
        floor = [widths[0]] + [max(len(h), MIN_CUT) for h in headers[1:]]
        over = sum(widths) + 2 * (len(widths) - 1) - width
        for i in cut_first:
            take = max(min(over, widths[i] - floor[i]), 0)
            widths[i] -= take
            over -= take
        while over > 0:
            i = max(range(len(widths)), key=lambda k: (widths[k] - floor[k], -k))
            if widths[i] <= floor[i]:
                break
            widths[i] -= 1
            over -= 1
    lines = []
    for r in [headers] + rows:
        cells = [cut(c, w).ljust(w) for c, w in zip(r, widths)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def print_table(headers, rows, cut_first=()):
    print(table(headers, rows, terminal_width(), cut_first))


def fields(pairs):
    """"key: value" lines, the values aligned, for one object; a None value prints "-"."""
    pairs = list(pairs)
    w = max((len(k) for k, _ in pairs), default=0) + 1
    return "\n".join(f"{(k + ':').ljust(w)} {'-' if v is None else v}" for k, v in pairs)
