"""The notifications part of the storage interface: the outbox every feature writes its events to
(verifier.notify.core.emit), in the caller's transaction, and the SQLite mixin of it. The webhook
configuration and the delivery log live beside it."""

import abc
import json

NOTIFY_SCHEMA = """
CREATE TABLE IF NOT EXISTS notify_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, tenant_id TEXT NOT NULL REFERENCES tenants(id),
    event TEXT NOT NULL, data TEXT NOT NULL, created INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS notify_outbox_tenant ON notify_outbox (tenant_id, id);
"""


class NotifyStorage(abc.ABC):
    @abc.abstractmethod
    def add_notification(self, tenant_id, event, data, now):
        """Append one event (a JSON-able dict) to the tenant's outbox; return its id."""

    @abc.abstractmethod
    def list_notifications(self, tenant_id, after_id=0, limit=100):
        """The tenant's outbox events with id > after_id, oldest first: [{id, event, data, created}]."""


class SQLiteNotifyStorage(NotifyStorage):
    def add_notification(self, tenant_id, event, data, now):
        with self.transaction():
            cur = self._db.execute("INSERT INTO notify_outbox (tenant_id, event, data, created) VALUES (?, ?, ?, ?)",
                                   (tenant_id, event, json.dumps(data, separators=(",", ":"), sort_keys=True),
                                    int(now)))
            return cur.lastrowid

    def list_notifications(self, tenant_id, after_id=0, limit=100):
        rows = self._db.execute("SELECT id, event, data, created FROM notify_outbox WHERE tenant_id = ? AND id > ? "
                                "ORDER BY id LIMIT ?", (tenant_id, int(after_id), int(limit))).fetchall()
        return [{"id": r[0], "event": r[1], "data": json.loads(r[2]), "created": r[3]} for r in rows]
