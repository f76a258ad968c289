"""The notifications part of the storage interface and its SQLite mixin: the outbox every feature writes
its events to (verifier.notify.core.emit, in the caller's transaction), the tenants' webhooks (the
signing secret sealed under the KEK), the deliveries fanned out from the outbox and the log of their
attempts. Everything a second verifier instance needs is here: the fan-out cursor, and the lease of a
delivery being sent (a claim is one UPDATE conditioned on the state and next_at, so two instances never
send the same delivery at once)."""

import abc
import json

NOTIFY_SCHEMA = """
CREATE TABLE IF NOT EXISTS notify_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, tenant_id TEXT NOT NULL REFERENCES tenants(id),
    event TEXT NOT NULL, data TEXT NOT NULL, created INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS notify_outbox_tenant ON notify_outbox (tenant_id, id);
CREATE TABLE IF NOT EXISTS notify_webhooks (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), url TEXT NOT NULL,
    events TEXT NOT NULL, description TEXT, sealed_secret BLOB NOT NULL, created INTEGER NOT NULL,
    from_event INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS notify_webhooks_tenant ON notify_webhooks (tenant_id, created);
CREATE TABLE IF NOT EXISTS notify_cursor (
    one INTEGER PRIMARY KEY CHECK (one = 1), last_event INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS notify_deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
    webhook_id TEXT NOT NULL, tenant_id TEXT NOT NULL, event_id INTEGER NOT NULL, event TEXT NOT NULL,
    state TEXT NOT NULL, attempts INTEGER NOT NULL, next_at INTEGER, lease TEXT,
    last_status INTEGER, last_error TEXT, created INTEGER NOT NULL, updated INTEGER NOT NULL,
    UNIQUE (webhook_id, event_id));
CREATE INDEX IF NOT EXISTS notify_deliveries_due ON notify_deliveries (state, next_at);
CREATE INDEX IF NOT EXISTS notify_deliveries_webhook ON notify_deliveries (webhook_id, seq);
CREATE INDEX IF NOT EXISTS notify_deliveries_event ON notify_deliveries (event_id);
CREATE TABLE IF NOT EXISTS notify_attempts (
    delivery_seq INTEGER NOT NULL, n INTEGER NOT NULL, at INTEGER NOT NULL, status INTEGER,
    error TEXT, duration_ms INTEGER NOT NULL, response TEXT, PRIMARY KEY (delivery_seq, n));
"""

_DELIVERY_COLS = ("seq", "id", "webhook_id", "tenant_id", "event_id", "event", "state", "attempts", "next_at",
                  "last_status", "last_error", "created", "updated")


class NotifyStorage(abc.ABC):
    @abc.abstractmethod
    def add_notification(self, tenant_id, event, data, now):
        """Append one event (a JSON-able dict) to the tenant's outbox; return its id."""

    @abc.abstractmethod
    def list_notifications(self, tenant_id, after_id=0, limit=100):
        """The tenant's outbox events with id > after_id, oldest first: [{id, event, data, created}]."""

    # webhooks

    @abc.abstractmethod
    def add_webhook(self, row):
        """Insert a webhook {id, tenant_id, url, events, description, sealed_secret, created}; it gets the
        outbox events written after this call (from_event: the outbox's last id now)."""

    @abc.abstractmethod
    def list_webhooks(self, tenant_id, limit=1000):
        """The tenant's webhooks, oldest first, each a dict with `sealed_secret`."""

    @abc.abstractmethod
    def get_webhook(self, tenant_id, webhook_id):
        """One of the tenant's webhooks, or None."""

    @abc.abstractmethod
    def delete_webhook(self, tenant_id, webhook_id):
        """Delete the webhook with its deliveries and their log; False if the tenant has no such webhook."""

    # delivery

    @abc.abstractmethod
    def fan_out(self, now, new_id, match, limit=500):
        """Turn up to `limit` outbox events past the shared cursor into pending deliveries (one per
        webhook for which match(webhook, event, data) holds, ids from new_id()) and move the cursor, in
        one transaction; return the number of events read (so a caller knows whether more wait)."""

    @abc.abstractmethod
    def due_deliveries(self, now, limit):
        """The seqs of up to `limit` pending deliveries with next_at <= now, oldest due first (a claim
        still has to take each)."""

    @abc.abstractmethod
    def claim_delivery(self, seq, now, lease, lease_until):
        """Take the delivery if it is still pending and due at `now` (one conditioned UPDATE: next_at
        moves to lease_until and `lease` is recorded); return what sending it needs (the delivery, its
        webhook with sealed_secret, its outbox event) or None if another sender got it first."""

    @abc.abstractmethod
    def finish_attempt(self, seq, lease, attempt, state, next_at, now):
        """Log `attempt` {at, status, error, duration_ms, response} and set the delivery's state and
        next_at, only if the caller still holds the lease; return whether it did."""

    @abc.abstractmethod
    def list_deliveries(self, webhook_id, limit, before_seq=None):
        """The webhook's deliveries, newest first, each with its `log` of attempts (oldest first)."""

    @abc.abstractmethod
    def prune_notifications(self, now, keep_s, max_per_webhook, outbox_keep_s):
        """Delete finished deliveries older than keep_s or past the newest max_per_webhook of their
        webhook, and outbox rows already fanned out, older than outbox_keep_s and with no pending
        delivery; return the number of rows deleted."""


class SQLiteNotifyStorage(NotifyStorage):
    def add_notification(self, tenant_id, event, data, now):
        with self.transaction():
            return self._db.execute("INSERT INTO notify_outbox (tenant_id, event, data, created) VALUES (?, ?, ?, ?) "
                                    "RETURNING id", (tenant_id, event, json.dumps(data, separators=(",", ":"),
                                                                                  sort_keys=True), int(now))).fetchone()[0]

    def list_notifications(self, tenant_id, after_id=0, limit=100):
        rows = self._db.execute("SELECT id, event, data, created FROM notify_outbox WHERE tenant_id = ? AND id > ? "
                                "ORDER BY id LIMIT ?", (tenant_id, int(after_id), int(limit))).fetchall()
        return [{"id": r[0], "event": r[1], "data": json.loads(r[2]), "created": r[3]} for r in rows]

    # webhooks

    @staticmethod
    def _webhook(r):
        return {"id": r[0], "tenant_id": r[1], "url": r[2], "events": json.loads(r[3]), "description": r[4],
                "sealed_secret": bytes(r[5]), "created": r[6], "from_event": r[7]}

    _WEBHOOK_SELECT = ("SELECT id, tenant_id, url, events, description, sealed_secret, created, from_event "
                       "FROM notify_webhooks")

    def add_webhook(self, row):
        with self.transaction():
            last = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM notify_outbox").fetchone()[0]
            self._db.execute("INSERT INTO notify_webhooks (id, tenant_id, url, events, description, sealed_secret, "
                             "created, from_event) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (row["id"], row["tenant_id"], row["url"], json.dumps(row["events"]), row["description"],
                              row["sealed_secret"], int(row["created"]), last))

    def list_webhooks(self, tenant_id, limit=1000):
        rows = self._db.execute(self._WEBHOOK_SELECT + " WHERE tenant_id = ? ORDER BY created, id LIMIT ?",
                                (tenant_id, int(limit))).fetchall()
        return [self._webhook(r) for r in rows]

    def get_webhook(self, tenant_id, webhook_id):
        r = self._db.execute(self._WEBHOOK_SELECT + " WHERE tenant_id = ? AND id = ?",
                             (tenant_id, webhook_id)).fetchone()
        return None if r is None else self._webhook(r)

    def delete_webhook(self, tenant_id, webhook_id):
        db = self._db
        with self.transaction():
            if db.execute("DELETE FROM notify_webhooks WHERE tenant_id = ? AND id = ?",
                          (tenant_id, webhook_id)).rowcount == 0:
                return False
            db.execute("DELETE FROM notify_attempts WHERE delivery_seq IN "
                       "(SELECT seq FROM notify_deliveries WHERE webhook_id = ?)", (webhook_id,))
            db.execute("DELETE FROM notify_deliveries WHERE webhook_id = ?", (webhook_id,))
        return True

    # delivery

    def fan_out(self, now, new_id, match, limit=500):
        db = self._db
        # Nothing past the cursor: no writer lock taken (a pass every tick of every instance). On PostgreSQL that lock,
        # taken on the event loop's thread, would wait for this instance's own binary-auth transaction in flight,
        # which cannot finish while the loop waits: the instance would hang (verifier/store_pg.py record_auth_async).
        if not db.execute("SELECT 1 FROM notify_outbox WHERE id > (SELECT coalesce(max(last_event), 0) FROM "
                          "notify_cursor WHERE one = 1) LIMIT 1").fetchone():
            return 0
        with self.transaction():                      # BEGIN IMMEDIATE: one instance fans out at a time
            row = db.execute("SELECT last_event FROM notify_cursor WHERE one = 1").fetchone()
            cursor = row[0] if row else 0
            events = db.execute("SELECT id, tenant_id, event, data FROM notify_outbox WHERE id > ? ORDER BY id "
                                "LIMIT ?", (cursor, int(limit))).fetchall()
            if not events:
                return 0
            hooks = {}
            for eid, tenant_id, event, data in events:
                if tenant_id not in hooks:
                    hooks[tenant_id] = [self._webhook(r) for r in db.execute(
                        self._WEBHOOK_SELECT + " WHERE tenant_id = ?", (tenant_id,)).fetchall()]
                doc = json.loads(data)
                for hook in hooks[tenant_id]:
                    if eid > hook["from_event"] and match(hook, event, doc):
                        db.execute("INSERT OR IGNORE INTO notify_deliveries (id, webhook_id, tenant_id, event_id, "
                                   "event, state, attempts, next_at, created, updated) "
                                   "VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
                                   (new_id(), hook["id"], tenant_id, eid, event, int(now), int(now), int(now)))
            db.execute("INSERT INTO notify_cursor (one, last_event) VALUES (1, ?) "
                       "ON CONFLICT (one) DO UPDATE SET last_event = excluded.last_event", (events[-1][0],))
        return len(events)

    def due_deliveries(self, now, limit):
        return [r[0] for r in self._db.execute(
            "SELECT seq FROM notify_deliveries WHERE state = 'pending' AND next_at <= ? ORDER BY next_at, seq "
            "LIMIT ?", (int(now), int(limit))).fetchall()]

    def claim_delivery(self, seq, now, lease, lease_until):
        db = self._db
        with self.transaction():
            if db.execute("UPDATE notify_deliveries SET next_at = ?, lease = ? "
                          "WHERE seq = ? AND state = 'pending' AND next_at <= ?",
                          (int(lease_until), lease, seq, int(now))).rowcount != 1:
                return None
            d = db.execute(f"SELECT {', '.join(_DELIVERY_COLS)} FROM notify_deliveries WHERE seq = ?",
                           (seq,)).fetchone()
            delivery = dict(zip(_DELIVERY_COLS, tuple(d)))
            hook = db.execute(self._WEBHOOK_SELECT + " WHERE id = ?", (delivery["webhook_id"],)).fetchone()
            ev = db.execute("SELECT id, event, data, created FROM notify_outbox WHERE id = ?",
                            (delivery["event_id"],)).fetchone()
        if hook is None or ev is None:
            return None
        return {"delivery": delivery, "webhook": self._webhook(hook),
                "event": {"id": ev[0], "event": ev[1], "data": json.loads(ev[2]), "created": ev[3]}}

    def finish_attempt(self, seq, lease, attempt, state, next_at, now):
        db = self._db
        with self.transaction():
            cur = db.execute("UPDATE notify_deliveries SET state = ?, next_at = ?, lease = NULL, "
                             "attempts = attempts + 1, last_status = ?, last_error = ?, updated = ? "
                             "WHERE seq = ? AND lease = ?",
                             (state, next_at, attempt["status"], attempt["error"], int(now), seq, lease))
            if cur.rowcount != 1:
                return False
            n = db.execute("SELECT attempts FROM notify_deliveries WHERE seq = ?", (seq,)).fetchone()[0]
            db.execute("INSERT INTO notify_attempts (delivery_seq, n, at, status, error, duration_ms, response) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", (seq, n, int(attempt["at"]), attempt["status"],
                                                        attempt["error"], int(attempt["duration_ms"]),
                                                        attempt["response"]))
        return True

    def list_deliveries(self, webhook_id, limit, before_seq=None):
        q = f"SELECT {', '.join(_DELIVERY_COLS)} FROM notify_deliveries WHERE webhook_id = ?"
        args = [webhook_id]
        if before_seq is not None:
            q += " AND seq < ?"
            args.append(int(before_seq))
        rows = self._db.execute(q + " ORDER BY seq DESC LIMIT ?", args + [int(limit)]).fetchall()
        out = [dict(zip(_DELIVERY_COLS, tuple(r))) for r in rows]
        for d in out:
            d["log"] = [{"n": a[0], "at": a[1], "status": a[2], "error": a[3], "duration_ms": a[4], "response": a[5]}
                        for a in self._db.execute("SELECT n, at, status, error, duration_ms, response "
                                                  "FROM notify_attempts WHERE delivery_seq = ? ORDER BY n",
                                                  (d["seq"],)).fetchall()]
        return out

    def prune_notifications(self, now, keep_s, max_per_webhook, outbox_keep_s):
        db = self._db
        deleted = 0
        with self.transaction():
            old = [r[0] for r in db.execute("SELECT seq FROM notify_deliveries WHERE state != 'pending' "
                                            "AND updated < ? LIMIT 1000", (int(now) - keep_s,)).fetchall()]
            for hook in [r[0] for r in db.execute("SELECT DISTINCT webhook_id FROM notify_deliveries").fetchall()]:
                cut = db.execute("SELECT seq FROM notify_deliveries WHERE webhook_id = ? ORDER BY seq DESC "
                                 "LIMIT 1 OFFSET ?", (hook, int(max_per_webhook))).fetchone()
                if cut is not None:
                    old += [r[0] for r in db.execute(
                        "SELECT seq FROM notify_deliveries WHERE webhook_id = ? AND seq <= ? AND state != 'pending' "
                        "LIMIT 1000", (hook, cut[0])).fetchall()]
            for seq in set(old):
                db.execute("DELETE FROM notify_attempts WHERE delivery_seq = ?", (seq,))
                deleted += db.execute("DELETE FROM notify_deliveries WHERE seq = ?", (seq,)).rowcount
            row = db.execute("SELECT last_event FROM notify_cursor WHERE one = 1").fetchone()
            if row is not None:
                deleted += db.execute(
                    "DELETE FROM notify_outbox WHERE id IN (SELECT id FROM notify_outbox o WHERE o.id <= ? "
                    "AND o.created < ? AND NOT EXISTS (SELECT 1 FROM notify_deliveries d WHERE d.event_id = o.id "
                    "AND d.state = 'pending') LIMIT 1000)", (row[0], int(now) - outbox_keep_s)).rowcount
        return deleted
