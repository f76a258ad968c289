"""The claims part of the PostgreSQL store (verifier/store_pg.py; docs/architecture.md "PostgreSQL").

The SQL of SQLiteClaimsStorage means the same on PostgreSQL; what differs is the transaction of the claim path.
On SQLite it is BEGIN IMMEDIATE (the file's one writer). Here that would be the writer lock every instance's admin
writes take (pgconn WRITER_LOCK), so claims would queue behind each other and behind every admin change; they do
not need it: a claim's correctness rests on row conditions alone. The slot is taken by `UPDATE claim_batches SET
claimed_count = claimed_count + 1 WHERE id = ? AND claimed_count < max_count` (under READ COMMITTED a second
transaction waits for the row and re-checks the condition on the committed count: of two claims of the last slot
one updates no row), the claims row by its primary key (batch, serial) and the device by (tenant, serial), and a
resume by `UPDATE claims ... WHERE nonces = <the list it read>`. The transaction still takes the writer lock
SHARED (as binary auth's batches do), so an exclusive writer that checks and then writes (a batch revoke, a
reset) sees no claim half-way."""

from verifier import pgconn


class PGClaimsStorage:
    """PostgreSQL overrides of SQLiteClaimsStorage (mixed into PGStorage before SQLiteStorage)."""

    def _claim_transaction(self):
        return self._transaction("BEGIN", pgconn.SHARED_LOCK)   # inside the caller's transaction: joins it
