"""The console's storage (docs/console.md "Security model"): its sessions, and the two list queries its pages need
that the JSON API's do not offer (devices by serial, status or last authentication, with search and filters; audit
rows by kind and result). Both backends: the SQL here means the same on SQLite and on PostgreSQL, except the few
dialect parts that are class attributes (verifier/console/store_pg.py has PostgreSQL's).

A session row holds the SHA-256 of the session id (the cookie's value; never the id itself), the tenant and the
admin token it was opened with, its CSRF token, its expiry and one pending flash message. It is read joined with
the token, so a revoked token ends its sessions at their next request."""

import abc
import json

CONSOLE_SCHEMA = """
CREATE TABLE IF NOT EXISTS console_sessions (
    id_hash BLOB PRIMARY KEY, tenant_id TEXT NOT NULL, token_id TEXT NOT NULL, csrf TEXT NOT NULL,
    created INTEGER NOT NULL, expires INTEGER NOT NULL, flash TEXT);
CREATE INDEX IF NOT EXISTS console_sessions_expires ON console_sessions (expires);
"""
# the devices table's pages sorted by status (by serial: the UNIQUE (tenant_id, serial_number) index)
CONSOLE_INDEXES = """
CREATE INDEX IF NOT EXISTS devices_console_status ON devices (tenant_id, status, serial_number);
"""

SORTS = ("serial", "status", "last_seen")
_SEEN = "COALESCE(a.last_authenticated_at, 0)"
# sort -> (ORDER BY of the page's ids, the keyset condition after a cursor, ORDER BY of the page's rows, the
# cursor's values from a row)
_ORDER = {
    "serial": ("d.serial_number", "d.serial_number > ?", "p.serial", lambda r: [r["serial_number"]]),
    "status": ("d.status, d.serial_number", "(d.status, d.serial_number) > (?, ?)", "p.status, p.serial",
               lambda r: [r["status"], r["serial_number"]]),
    "last_seen": (f"{_SEEN} DESC, d.serial_number", f"({_SEEN} < ? OR ({_SEEN} = ? AND d.serial_number > ?))",
                  "p.seen DESC, p.serial", lambda r: [r["last_authenticated_at"] or 0, r["serial_number"]]),
}
# A page in two steps: the ids of the page (a narrow row per device: by serial or status the index alone, ordered;
# by last authentication a sort of (time, serial, id) only), then the page's rows by primary key.
_PAGE_IDS = ("SELECT d.id AS id, d.serial_number AS serial, d.status AS status, " + _SEEN + " AS seen "
             "FROM devices d LEFT JOIN auth_state a ON a.id = d.id WHERE d.tenant_id = ?")
_PAGE_ROWS = ("SELECT d.id, d.serial_number, d.status, d.quarantined, d.compromised, d.metadata, "
              "a.last_authenticated_at FROM ({ids}) p JOIN devices d ON d.id = p.id "
              "LEFT JOIN auth_state a ON a.id = d.id ORDER BY {order}")


def cursor_values(sort, row):
    """The values a page's last row gives the next page's cursor (console_devices' `after`)."""
    return _ORDER[sort][3](row)


class ConsoleStorage(abc.ABC):
    @abc.abstractmethod
    def add_console_session(self, id_hash, tenant_id, token_id, csrf, created, expires):
        """Store a new session (and delete the expired ones)."""

    @abc.abstractmethod
    def get_console_session(self, id_hash, now):
        """{tenant_id, tenant_name, token_id, role, csrf, expires, flash} of an unexpired session whose token is not
        revoked, else None."""

    @abc.abstractmethod
    def delete_console_session(self, id_hash):
        """End a session."""

    @abc.abstractmethod
    def set_console_flash(self, id_hash, text):
        """The message the session's next page shows once (None: clear it)."""

    @abc.abstractmethod
    def console_devices(self, tenant_id, q=None, status=None, firmware=None, tag=None, group=None, online=None,
                        online_since=0, sort="serial", after=None, limit=50):
        """One page of the tenant's devices: dicts {id, serial_number, status, quarantined, compromised, metadata,
        last_authenticated_at}, by `sort` (SORTS), after the cursor values `after` (cursor_values)."""


class SQLiteConsoleStorage(ConsoleStorage):
    # serial prefix (the UNIQUE (tenant_id, serial_number) index: a range of the BINARY collation)
    SERIAL_PREFIX_SQL = "(d.serial_number >= ? AND d.serial_number < ?)"
    FIRMWARE_SQL = "json_extract(d.metadata, '$.firmware_version') = ?"

    @staticmethod
    def serial_prefix_args(prefix):
        return [prefix, prefix + "\U0010ffff"]

    def add_console_session(self, id_hash, tenant_id, token_id, csrf, created, expires):
        with self.transaction():
            self._db.execute("DELETE FROM console_sessions WHERE expires <= ?", (created,))
            self._db.execute("INSERT INTO console_sessions (id_hash, tenant_id, token_id, csrf, created, expires) "
                             "VALUES (?, ?, ?, ?, ?, ?)", (id_hash, tenant_id, token_id, csrf, created, expires))

    def get_console_session(self, id_hash, now):
        row = self._db.execute(
            "SELECT s.tenant_id, n.name, s.token_id, t.role, s.csrf, s.expires, s.flash FROM console_sessions s "
            "JOIN tokens t ON t.id = s.token_id AND t.tenant_id = s.tenant_id JOIN tenants n ON n.id = s.tenant_id "
            "WHERE s.id_hash = ? AND s.expires > ? AND t.revoked_at IS NULL", (id_hash, now)).fetchone()
        return None if row is None else dict(zip(
            ("tenant_id", "tenant_name", "token_id", "role", "csrf", "expires", "flash"), row))

    def delete_console_session(self, id_hash):
        with self.transaction():
            self._db.execute("DELETE FROM console_sessions WHERE id_hash = ?", (id_hash,))

    def set_console_flash(self, id_hash, text):
        with self.transaction():
            self._db.execute("UPDATE console_sessions SET flash = ? WHERE id_hash = ?", (text, id_hash))

    def console_devices(self, tenant_id, q=None, status=None, firmware=None, tag=None, group=None, online=None,
                        online_since=0, sort="serial", after=None, limit=50):
        sql, args = [_PAGE_IDS], [tenant_id]
        if q:
            cond, cargs = [self.SERIAL_PREFIX_SQL], self.serial_prefix_args(q)
            hexq = q.lower()
            if len(hexq) <= 16 and all(c in "0123456789abcdef" for c in hexq):   # also a device id prefix
                cond.append("(d.id >= ? AND d.id <= ?)")
                cargs += [bytes.fromhex(hexq.ljust(16, "0")), bytes.fromhex(hexq.ljust(16, "f"))]
            sql.append("AND (" + " OR ".join(cond) + ")"); args += cargs
        if status is not None:
            sql.append("AND d.status = ?"); args.append(status)
        if firmware is not None:
            sql.append("AND " + self.FIRMWARE_SQL); args.append(firmware)
        if group is not None:
            sql.append("AND " + self.DEVICE_GROUP_SQL); args.append(group)
        if tag is not None:
            sql.append("AND " + self.DEVICE_TAG_SQL); args.append(tag)
        if online is True:
            sql.append("AND a.last_authenticated_at >= ?"); args.append(online_since)
        elif online is False:
            sql.append("AND (a.last_authenticated_at IS NULL OR a.last_authenticated_at < ?)")
            args.append(online_since)
        order, after_sql, rows_order, _ = _ORDER[sort]
        if after is not None:
            sql.append("AND " + after_sql)
            args += [after[0], after[0], after[1]] if sort == "last_seen" else list(after)
        sql.append(f"ORDER BY {order} LIMIT ?"); args.append(limit)
        out = []
        for r in self._db.execute(_PAGE_ROWS.format(ids=" ".join(sql), order=rows_order), args):
            d = dict(zip(("id", "serial_number", "status", "quarantined", "compromised", "metadata",
                          "last_authenticated_at"), r))
            d["id"] = bytes(d["id"])
            d["metadata"] = json.loads(d["metadata"])
            d["quarantined"], d["compromised"] = bool(d["quarantined"]), bool(d["compromised"])
            out.append(d)
        return out
