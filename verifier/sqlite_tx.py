"""Transactions on a sqlite3 connection opened with isolation_level=None (autocommit), shared by the
registry (verifier/registry/store.py) and the edge's own file (verifier/edge/store.py)."""

import contextlib


class SQLiteTransactions:
    """Mixin: `transaction()` commits everything inside together or nothing (BEGIN IMMEDIATE, so a
    writer takes the lock at once); a nested call joins the outer transaction. The class sets
    `self._db` (the connection) and `self._depth = 0`."""

    def transaction(self):
        return self._transaction("BEGIN IMMEDIATE")

    @contextlib.contextmanager
    def _transaction(self, *begin):
        # the outermost call runs the `begin` statements (a backend may need more than one: PostgreSQL's claim
        # path takes the shared writer lock after BEGIN, verifier/claims/store_pg.py)
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        for sql in begin:
            self._db.execute(sql)
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self._db.execute("ROLLBACK")
            raise
        self._depth = 0
        self._db.execute("COMMIT")
