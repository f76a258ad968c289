"""The policy part of the storage interface (docs/policies.md) and its SQLite mixin: one row per (tenant, scope,
key) holding a validated policy document as JSON text. A tenant's rows are read all at once (`tenant_policies`):
the verifier keeps them in memory per tenant (verifier/policy/cache.py) and reads them again after a change."""

import abc
import json

POLICY_SCHEMA = """
CREATE TABLE IF NOT EXISTS policies (
    tenant_id TEXT NOT NULL, scope TEXT NOT NULL, key TEXT NOT NULL, doc TEXT NOT NULL,
    updated_at INTEGER NOT NULL, updated_by TEXT,
    PRIMARY KEY (tenant_id, scope, key)) WITHOUT ROWID;
"""

_COLUMNS = ("scope", "key", "doc", "updated_at", "updated_by")
_SELECT = "SELECT " + ", ".join(_COLUMNS) + " FROM policies"
_RANK = "CASE scope WHEN 'tenant' THEN 0 WHEN 'model' THEN 1 WHEN 'group' THEN 2 ELSE 3 END"
SCOPE_RANK = {"tenant": 0, "model": 1, "group": 2, "device": 3}
UPSERT = ("INSERT INTO policies (tenant_id, scope, key, doc, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?) "
          "ON CONFLICT (tenant_id, scope, key) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at, "
          "updated_by = excluded.updated_by")


def policy_row(r):
    p = dict(zip(_COLUMNS, r))
    p["doc"] = json.loads(p["doc"])
    return p


def encode_doc(doc):
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)


class PolicyStorage(abc.ABC):
    @abc.abstractmethod
    def get_policy(self, tenant_id, scope, key):
        """{scope, key, doc, updated_at, updated_by} or None."""

    @abc.abstractmethod
    def put_policy(self, tenant_id, scope, key, doc, now, by):
        """Insert or replace the document of (scope, key); True if it was created. The caller holds the
        transaction when the audit row must go with it."""

    @abc.abstractmethod
    def delete_policy(self, tenant_id, scope, key):
        """False if there was none."""

    @abc.abstractmethod
    def list_policies(self, tenant_id, scope=None, after=None, limit=100):
        """The tenant's policies in merge order (tenant, model, group, device), then by key; `after`: a
        (scope, key) cursor."""

    @abc.abstractmethod
    def tenant_policies(self, tenant_id):
        """{(scope, key): doc} of every policy of the tenant."""


class SQLitePolicyStorage(PolicyStorage):
    def get_policy(self, tenant_id, scope, key):
        r = self._db.execute(_SELECT + " WHERE tenant_id = ? AND scope = ? AND key = ?",
                             (tenant_id, scope, key)).fetchone()
        return None if r is None else policy_row(r)

    def put_policy(self, tenant_id, scope, key, doc, now, by):
        with self.transaction():
            created = self._db.execute("SELECT 1 FROM policies WHERE tenant_id = ? AND scope = ? AND key = ?",
                                       (tenant_id, scope, key)).fetchone() is None
            self._db.execute(UPSERT, (tenant_id, scope, key, encode_doc(doc), int(now), by))
        return created

    def delete_policy(self, tenant_id, scope, key):
        with self.transaction():
            return self._db.execute("DELETE FROM policies WHERE tenant_id = ? AND scope = ? AND key = ?",
                                    (tenant_id, scope, key)).rowcount == 1

    def list_policies(self, tenant_id, scope=None, after=None, limit=100):
        q, args = _SELECT + " WHERE tenant_id = ?", [tenant_id]
        if scope is not None:
            q += " AND scope = ?"; args.append(scope)
        if after is not None:
            q += f" AND ({_RANK} > ? OR ({_RANK} = ? AND key > ?))"
            args += [SCOPE_RANK[after[0]], SCOPE_RANK[after[0]], after[1]]
        q += f" ORDER BY {_RANK}, key LIMIT ?"; args.append(int(limit))
        return [policy_row(r) for r in self._db.execute(q, args)]

    def tenant_policies(self, tenant_id):
        return {(r[0], r[1]): json.loads(r[2]) for r in self._db.execute(
            "SELECT scope, key, doc FROM policies WHERE tenant_id = ?", (tenant_id,))}
