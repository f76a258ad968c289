"""A PostgreSQL connection (psycopg 3) with the part of the sqlite3 interface the feature stores use, so a
store's SQL can run on PostgreSQL where the two dialects agree, and the store overrides only what differs
(issue #15; docs/architecture.md "PostgreSQL").

What it gives, and how each piece maps:
- `execute(sql, args)`, `executemany(sql, rows)`, `executescript(script)`, `close()`; a cursor with
  `fetchone()`, `fetchall()`, iteration and `rowcount`. `lastrowid` does not exist on PostgreSQL: reading it raises
  NotImplementedError, so a store that needs it must say RETURNING in its PostgreSQL part.
- rows that behave like sqlite3.Row: a tuple (index, unpacking) whose columns are also found by name
  (`row["id"]`, `dict(row)`).
- statements translated once per text (`translate`, cached): `?` placeholders become `%s` (and a literal `%`
  becomes `%%`), `IS ?` becomes `IS NOT DISTINCT FROM %s`, `IS NOT ?` becomes `IS DISTINCT FROM %s`,
  `INSERT OR IGNORE INTO ...` becomes
  `INSERT INTO ... ON CONFLICT DO NOTHING`, `ifnull(` becomes `COALESCE(`, a blob literal `x'0a'` becomes
  `'\\x0a'::bytea`, and `BEGIN IMMEDIATE` becomes `BEGIN` followed by the writer lock
  (below). Anything with no safe general translation (`INSERT OR REPLACE`, a `?` inside a quoted literal) raises
  NotImplementedError at once, naming the statement, rather than running with a different meaning. SQLite
  functions (`json_extract`, `json_each`, ...) are left as they are, and PostgreSQL refuses them: a loud failure
  that the store's PostgreSQL part then overrides.
- DDL translated by `translate_ddl`: BLOB -> BYTEA, INTEGER -> BIGINT, REAL -> DOUBLE PRECISION, `INTEGER PRIMARY KEY` (SQLite's rowid
  alias, with or without AUTOINCREMENT) -> an identity column, `WITHOUT ROWID` dropped. Triggers are not translated (their bodies differ).
- values: a bool argument is sent as 0 or 1 (SQLite keeps flags as integers, and so do these schemas); a numeric
  result (sum() of integers) comes back as an int when it is whole, else a float, as SQLite's would.
- errors: psycopg's IntegrityError and other database errors are raised as `IntegrityError` and `DatabaseError`
  below, subclasses of sqlite3's, so a store's `except sqlite3.IntegrityError` (and `except sqlite3.Error`) holds
  on both backends without a second clause; the original error is the `__cause__`.

Transactions. The connection is in autocommit mode and the stores' own `transaction()` (verifier/sqlite_tx.py)
sends BEGIN/COMMIT/ROLLBACK. Every store method was written against SQLite, where BEGIN IMMEDIATE makes a
transaction the only writer of the file: a check and the write that depends on it cannot interleave with another
writer. On PostgreSQL that guarantee is kept exactly by taking one transaction-scoped advisory lock
(`pg_advisory_xact_lock(WRITER_LOCK)`) at BEGIN IMMEDIATE: writers of all instances sharing the database take
turns, as writers of one SQLite file do, and readers never wait. The auth path's hot writes are meant to use
row-level conditions instead and not this lock (the group commit's conditional upsert; issue #15).
"""

import re
import sqlite3
from decimal import Decimal

import psycopg

# Transaction-scoped advisory lock key taken by BEGIN IMMEDIATE (any constant shared by every instance; "janua").
WRITER_LOCK = 0x6A616E7561
# The same lock taken shared: writers that only need row conditions (binary auth's batches, claims) run together
# and never half-way through an exclusive writer's check-then-write.
SHARED_LOCK = f"SELECT pg_advisory_xact_lock_shared({WRITER_LOCK})"
_CACHE = {}
_INSERT_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\b", re.I)
_INSERT_OR_REPLACE = re.compile(r"^\s*(INSERT\s+OR\s+REPLACE|REPLACE)\s+INTO\b", re.I)
_RETURNING = re.compile(r"\bRETURNING\b", re.I)
_BEGIN_IMMEDIATE = re.compile(r"^\s*BEGIN\s+IMMEDIATE\s*;?\s*$", re.I)
_BEGIN_WRITER = ("BEGIN", f"SELECT pg_advisory_xact_lock({WRITER_LOCK})")   # two statements, one after the other


class IntegrityError(sqlite3.IntegrityError):
    """A constraint refused the statement (unique, foreign key, not null, check) on PostgreSQL."""


class DatabaseError(sqlite3.OperationalError):
    """Any other PostgreSQL error (connection lost, syntax, serialization failure, ...)."""


def translate(sql):
    """The PostgreSQL text of one sqlite3-style statement (see the module docstring); cached."""
    out = _CACHE.get(sql)
    if out is None:
        out = _CACHE[sql] = _translate(sql)
    return out


def _common(sql):
    # what both statements and DDL share: ifnull() and x'..' blob literals
    sql = re.sub(r"\bifnull\s*\(", "COALESCE(", sql, flags=re.I)
    return re.sub(r"\b[xX]'([0-9a-fA-F]*)'", r"'\\x\1'::bytea", sql)


def _translate(sql):
    sql = _common(sql)
    if _BEGIN_IMMEDIATE.match(sql):
        return _BEGIN_WRITER
    if _INSERT_OR_REPLACE.match(sql):
        raise NotImplementedError(f"no general PostgreSQL form of INSERT OR REPLACE: {sql.strip()[:120]}")
    ignore = bool(_INSERT_OR_IGNORE.match(sql))
    if ignore:
        sql = _INSERT_OR_IGNORE.sub("INSERT INTO", sql, count=1)
    parts, quoted = [], False
    for ch in sql:
        if ch == "'":
            quoted = not quoted
            parts.append(ch)
        elif ch == "?":
            if quoted:
                raise NotImplementedError(f"a ? inside a quoted literal: {sql.strip()[:120]}")
            parts.append("%s")
        elif ch == "%":
            parts.append("%%")
        else:
            parts.append(ch)
    out = "".join(parts)
    out = re.sub(r"\bIS\s+NOT\s+%s", "IS DISTINCT FROM %s", out)
    out = re.sub(r"\bIS\s+%s", "IS NOT DISTINCT FROM %s", out)
    if ignore:
        m = _RETURNING.search(out)
        out = (out[:m.start()] + "ON CONFLICT DO NOTHING " + out[m.start():]) if m else \
            out.rstrip().rstrip(";") + " ON CONFLICT DO NOTHING"
    return out


def translate_ddl(script):
    """The PostgreSQL text of a SQLite schema script of tables and indexes (not triggers)."""
    s = _common(script)
    s = re.sub(r"\bINTEGER\s+PRIMARY\s+KEY(\s+AUTOINCREMENT)?\b", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
               s, flags=re.I)
    s = re.sub(r"\bINTEGER\b", "BIGINT", s, flags=re.I)
    s = re.sub(r"\bBLOB\b", "BYTEA", s, flags=re.I)
    s = re.sub(r"\bREAL\b", "DOUBLE PRECISION", s, flags=re.I)      # SQLite's REAL is 8 bytes; PostgreSQL's is 4
    s = re.sub(r"\)\s*WITHOUT\s+ROWID", ")", s, flags=re.I)
    if re.search(r"\bCREATE\s+TRIGGER\b", s, re.I):
        raise NotImplementedError("triggers have no general PostgreSQL translation: write the PostgreSQL part")
    return s


_ROW_CLASSES = {}


def _row_class(names):
    cls = _ROW_CLASSES.get(names)
    if cls is None:
        index = {n: i for i, n in enumerate(names)}

        class Row(tuple):
            __slots__ = ()

            def __getitem__(self, key, _get=tuple.__getitem__, _index=index):
                return _get(self, _index[key] if isinstance(key, str) else key)

            def keys(self, _names=names):
                return list(_names)

        cls = _ROW_CLASSES[names] = Row
    return cls


def _row_factory(cursor):
    desc = cursor.description
    if desc is None:
        return tuple
    cls = _row_class(tuple(d.name for d in desc))
    return lambda values: cls(values)


def _args(values):
    # SQLite stores a bool as the integer it is; the columns here are integers, so a bool goes as 0 or 1
    return tuple(int(v) if v.__class__ is bool else v for v in values)


class _NumericLoader(psycopg.adapt.Loader):
    """numeric (what sum() of integers gives on PostgreSQL) as SQLite gives it: an int when whole, else a float."""

    def load(self, data):
        d = Decimal(bytes(data).decode())
        return int(d) if d.is_finite() and d == d.to_integral_value() else float(d)


def _wrap(e):
    cls = IntegrityError if isinstance(e, psycopg.errors.IntegrityError) else DatabaseError
    return cls(str(e).strip())


class Cursor:
    """The result of one execute: fetchone/fetchall/iteration and rowcount, like sqlite3's cursor."""

    __slots__ = ("_cur",)

    def __init__(self, cur):
        self._cur = cur

    def fetchone(self):
        return self._cur.fetchone() if self._cur.description is not None else None

    def fetchall(self):
        return self._cur.fetchall() if self._cur.description is not None else []

    def __iter__(self):
        return iter(self.fetchall())

    @property
    def rowcount(self):
        return self._cur.rowcount

    @property
    def lastrowid(self):
        raise NotImplementedError("PostgreSQL has no lastrowid: use RETURNING in the store's PostgreSQL part")


class PGConnection:
    """One psycopg connection in autocommit mode, used from one thread (the event loop's), like the stores'
    sqlite3 connection.

    A connection the server dropped (a failover, a restart, a network cut) is opened again, through the same URL,
    by the next statement that is not inside a transaction. The first statement that meets the cut fails (psycopg
    learns of it then; it is not retried, since it may have run). Statements of a transaction that was cut fail up
    to and including its COMMIT or ROLLBACK, so none of them runs on the new connection outside the transaction it
    belonged to. A connection closed with close() stays closed."""

    def __init__(self, url):
        self._url = url
        self._in_tx = False
        self._closed = False
        self._copy_types = {}
        self._conn = self._open()

    def _open(self):
        try:
            conn = psycopg.connect(self._url, autocommit=True, row_factory=_row_factory)
        except psycopg.Error as e:
            raise _wrap(e) from e
        conn.adapters.register_loader("numeric", _NumericLoader)
        return conn

    def _ready(self, stmt):
        # the connection to run `stmt` on: a dropped one is replaced outside a transaction; BEGIN/COMMIT/ROLLBACK
        # are tracked so that one cut in the middle of a transaction is not replaced before it ends
        ends = stmt in ("COMMIT", "ROLLBACK")
        begins = stmt is _BEGIN_WRITER or stmt == "BEGIN"
        if ends:
            self._in_tx = False   # sent on the connection the transaction began on: a cut one fails (a COMMIT
                                  # that reached no server must not succeed on a new connection)
        elif not self._in_tx and not self._closed and self.lost:
            old, self._conn = self._conn, None
            if old is not None:
                old.close()
            self._conn = self._open()
        if begins:
            self._in_tx = True
        return self._conn

    def execute(self, sql, args=()):
        stmt = translate(sql)
        try:
            cur = self._ready(stmt).cursor()                # refused once the connection is closed: a DatabaseError too
            if stmt is _BEGIN_WRITER:
                for part in stmt:
                    cur.execute(part)
                return Cursor(cur)
            cur.execute(stmt, _args(args))
        except psycopg.Error as e:
            raise _wrap(e) from e
        return Cursor(cur)

    def executemany(self, sql, rows):
        try:
            cur = self._ready(None).cursor()
            cur.executemany(translate(sql), [_args(r) for r in rows])
        except psycopg.Error as e:
            raise _wrap(e) from e
        return Cursor(cur)

    def copy_rows(self, table, columns, rows):
        """COPY `rows` (tuples in `columns` order) into `table` in one statement, in PostgreSQL's binary format:
        the bulk load, many times faster than an INSERT per row. All or nothing like executemany: a row a constraint
        refuses fails the whole COPY (an IntegrityError; the transaction it ran in is aborted)."""
        cols = ", ".join(columns)
        try:
            with self._ready(None).cursor() as cur:
                types = self._copy_types.get((table, cols))
                if types is None:       # the columns' types, for the binary format: from an empty result
                    cur.execute(f"SELECT {cols} FROM {table} LIMIT 0")
                    types = self._copy_types[(table, cols)] = [d.type_code for d in cur.description]
                with cur.copy(f"COPY {table} ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(types)
                    write = copy.write_row
                    for r in rows:
                        write(r)
        except psycopg.Error as e:
            raise _wrap(e) from e

    def transaction_script(self, steps):
        """One transaction in one message: `steps` ((sql, args) statements) bound on the client and sent together as
        one simple query, which PostgreSQL runs as one implicit transaction, all or nothing, in one round trip. The
        rows of the last statement. (Outside a transaction of this connection's own: it is one.)"""
        try:
            conn = self._ready(None)
            cur = psycopg.ClientCursor(conn)
            text = ";\n".join(cur.mogrify(translate(sql), _args(args)) for sql, args in steps)
            cur.execute(text)
            rows = []
            while True:
                rows = cur.fetchall() if cur.description is not None else []
                if not cur.nextset():
                    return rows
        except psycopg.Error as e:
            raise _wrap(e) from e

    def executescript(self, script):
        """A script of DDL (already in PostgreSQL's dialect, see translate_ddl), in one round trip."""
        try:
            self._ready(None).execute(script)
        except psycopg.Error as e:
            raise _wrap(e) from e

    @property
    def lost(self):
        """True once the connection is closed or broken (the server went away)."""
        return self._conn is None or self._conn.closed or self._conn.broken

    def close(self):
        self._closed = True
        if self._conn is not None:
            self._conn.close()


class AsyncPGConnection:
    """The async twin of PGConnection for the auth path (psycopg.AsyncConnection, autocommit, the same
    translation, rows and errors). `execute` returns the result rows (a list; empty for a statement without)."""

    def __init__(self, conn):
        self._conn = conn

    @classmethod
    async def connect(cls, url):
        try:
            conn = await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=_row_factory)
        except psycopg.Error as e:
            raise _wrap(e) from e
        conn.adapters.register_loader("numeric", _NumericLoader)
        return cls(conn)

    async def execute(self, sql, args=()):
        stmt = translate(sql)
        try:
            async with self._conn.cursor() as cur:
                if stmt is _BEGIN_WRITER:
                    for part in stmt:
                        await cur.execute(part)
                    return []
                await cur.execute(stmt, _args(args))
                return await cur.fetchall() if cur.description is not None else []
        except psycopg.Error as e:
            raise _wrap(e) from e

    async def executemany(self, sql, rows):
        try:
            async with self._conn.cursor() as cur:
                await cur.executemany(translate(sql), [_args(r) for r in rows])
        except psycopg.Error as e:
            raise _wrap(e) from e

    async def close(self):
        await self._conn.close()
