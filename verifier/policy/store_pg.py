"""The policy store on PostgreSQL (issue #15): the PostgreSQL mixin of verifier.store_pg.PGStorage. The upsert
tells whether it inserted from the row itself (`xmax = 0` for a row this statement created), one statement where
SQLite's part reads first."""

from verifier.policy.store import UPSERT, encode_doc


class PGPolicyStorage:
    def put_policy(self, tenant_id, scope, key, doc, now, by):
        with self.transaction():
            return bool(self._db.execute(UPSERT + " RETURNING (xmax = 0)",
                                         (tenant_id, scope, key, encode_doc(doc), int(now), by)).fetchone()[0])
