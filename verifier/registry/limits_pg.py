"""Lockouts shared by every verifier instance on one PostgreSQL database (issue #15; docs/protocol.md 3.4
"Where the counters live").

`PGLimitStore` is a verifier.registry.limits.LimitStore whose lockout state (verifier.registry.lockout: the
consecutive-failure count and lockout of each device and source host, the failure budget of each device, the
trusted hosts of each device) is kept in three tables every instance reads and writes, so docs/protocol.md's
guessing bound holds for the fleet of instances, not per instance.

The rate limits (the source and device buckets, and every other bucket that is not a failure budget) are counted
in each instance's memory, each at its share of the rate: the tenant's capacity and refill divided by the number
of instances alive (a heartbeat row per instance in `verifier_instances`, `heartbeat_async()`, every HEARTBEAT_S).
Behind a load balancer that spreads requests evenly, the fleet then allows about the tenant's rate; a device that
sticks to one of N instances gets 1/N of it.

Two ways in:
- *Direct* (DTLS handshakes, MQTT/http-basic, BinAuthCore.handle): each call is one statement on a connection of
  its own, atomic in the database. A budget token is taken in the database before the secret is checked.
- *Batch* (binary auth's group commit, in the auth path's thread: PGStorage.in_auth_thread, verifier/binauth/batch.py): `begin_async()` runs
  before a batch is decided, in one call on the auth thread. It reads the trusted hosts of devices not seen yet (and of those it
  takes tokens for: another instance may have trusted their hosts), takes in one statement the budget
  tokens the batch's requests from untrusted hosts may need (so the budget is exact across instances: a token is
  the database's before any tag is checked), and reads the failure rows of the batch's devices. The batch is
  then decided in memory against that view; what it changed (failures, resets, new trusted hosts, tokens given
  back) is written by `commit_async()` before any reply goes out. Should `begin_async()` fail, the batch is
  decided closed (no budget token: requests from untrusted hosts are LOCKED_OUT) and its commit fails, so
  nothing it decided is sent.

What is exact and what is not: the failure budget is (tokens are taken atomically before the check). The
per-host count is read when a batch starts and added to when it ends, so k instances deciding batches for the
same device and host at the same moment can each allow the failures left on the count they read: in that
moment a host can get up to k times `lockout_failures - count` guesses instead of `lockout_failures - count`
(a trusted host's share of the bound; untrusted hosts are held by the budget). A host trusted on one instance is
learnt by another the next time that one loads the device; until then the other charges it to the budget (the
safe side).
"""

import sqlite3

from verifier import pgconn
from verifier.errors import StorageError
from verifier.registry.limits import MemoryLimitStore

TRUST_REFRESH_S = 86400      # a trusted host's row is rewritten at most once a day (it is trusted for 30)
TRUST_LOADED_MAX = 1_000_000
PRUNE_S = 60
HEARTBEAT_S = 10             # an instance says it is alive this often ...
ALIVE_S = 35                 # ... and counts as alive this long after it last did

PG_LIMITS_SCRIPT = """
CREATE TABLE IF NOT EXISTS limit_failures (
    scope TEXT NOT NULL, device_id BYTEA NOT NULL, host TEXT NOT NULL,
    count INTEGER NOT NULL, locked_until BIGINT NOT NULL, last_failure BIGINT NOT NULL,
    lockout_s BIGINT NOT NULL, threshold INTEGER NOT NULL,
    PRIMARY KEY (scope, device_id, host));
CREATE TABLE IF NOT EXISTS limit_budgets (
    scope TEXT NOT NULL, device_id BYTEA NOT NULL, tokens DOUBLE PRECISION NOT NULL, at DOUBLE PRECISION NOT NULL,
    capacity DOUBLE PRECISION NOT NULL, refill DOUBLE PRECISION NOT NULL, granted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, device_id));
CREATE TABLE IF NOT EXISTS limit_trusted (
    scope TEXT NOT NULL, device_id BYTEA NOT NULL, host TEXT NOT NULL, at BIGINT NOT NULL, ttl_s BIGINT NOT NULL,
    PRIMARY KEY (scope, device_id, host));
CREATE TABLE IF NOT EXISTS verifier_instances (id TEXT PRIMARY KEY, seen_at BIGINT NOT NULL);
"""

# budget tokens: the rows of devices without one are made full, then each device's request for w tokens is
# granted what its bucket holds, refilled to now (at most w), in one statement (ids sorted: one lock order)
_BUDGET_ROWS = ("INSERT INTO limit_budgets (scope, device_id, tokens, at, capacity, refill) "
                "SELECT ?, t.d, t.c, ?, t.c, t.r FROM unnest(?::bytea[], ?::float8[], ?::float8[]) AS t(d, c, r) "
                "ON CONFLICT (scope, device_id) DO NOTHING")
_AVAIL = "LEAST(t.c, b.tokens + GREATEST(0, ?::float8 - b.at) * t.r)"
_GRANT = (f"UPDATE limit_budgets AS b SET granted = LEAST(t.w, floor({_AVAIL}))::int, "
          f"tokens = {_AVAIL} - LEAST(t.w, floor({_AVAIL})), at = GREATEST(b.at, ?), capacity = t.c, refill = t.r "
          "FROM unnest(?::bytea[], ?::int[], ?::float8[], ?::float8[]) AS t(d, w, c, r) "
          "WHERE b.scope = ? AND b.device_id = t.d RETURNING b.device_id, b.granted")
_GIVE = ("UPDATE limit_budgets AS b SET tokens = LEAST(b.capacity, b.tokens + GREATEST(0, ?::float8 - b.at) * b.refill + t.n), "
         "at = GREATEST(b.at, ?) FROM unnest(?::bytea[], ?::int[]) AS t(d, n) WHERE b.scope = ? AND b.device_id = t.d")

# failures: k failures of (device, host) at time t. The count starts again when the lockout it led to is over or
# when it saw no failure for lockout_s (as in MemoryLimitStore.fail); the lockout starts when it reaches threshold.
_RESTART = ("((f.locked_until <> 0 AND excluded.last_failure >= f.locked_until) OR "
            "(f.locked_until = 0 AND excluded.last_failure - f.last_failure >= excluded.lockout_s))")
_FAIL = ("INSERT INTO limit_failures AS f (scope, device_id, host, count, locked_until, last_failure, lockout_s, threshold) "
         "SELECT ?, x.d, x.h, x.k, CASE WHEN x.k >= x.thr THEN x.t + x.ls ELSE 0 END, x.t, x.ls, x.thr "
         "FROM unnest(?::bytea[], ?::text[], ?::int[], ?::bigint[], ?::bigint[], ?::int[]) AS x(d, h, k, t, ls, thr) "
         "ON CONFLICT (scope, device_id, host) DO UPDATE SET "
         f"count = CASE WHEN {_RESTART} THEN excluded.count ELSE f.count + excluded.count END, "
         f"locked_until = CASE WHEN {_RESTART} THEN excluded.locked_until WHEN f.locked_until <> 0 THEN f.locked_until "
         "WHEN f.count + excluded.count >= excluded.threshold THEN excluded.last_failure + excluded.lockout_s ELSE 0 END, "
         "last_failure = GREATEST(f.last_failure, excluded.last_failure), lockout_s = excluded.lockout_s, "
         "threshold = excluded.threshold RETURNING f.device_id, f.host, f.locked_until")
_RESET = ("DELETE FROM limit_failures AS f USING unnest(?::bytea[], ?::text[]) AS x(d, h) "
          "WHERE f.scope = ? AND f.device_id = x.d AND f.host = x.h")
_FAILURES_OF = ("SELECT device_id, host, count, locked_until, last_failure, lockout_s FROM limit_failures "
                "WHERE scope = ? AND device_id = ANY(?::bytea[])")
# failure rows that count nothing any more: their lockout is over, or they saw no failure for lockout_s (every
# PRUNE_S, by whichever path writes failures: so junk traffic cannot grow the table without bound)
_PRUNE = ("DELETE FROM limit_failures WHERE (locked_until <> 0 AND locked_until <= ?) OR "
          "(locked_until = 0 AND last_failure + lockout_s <= ?)")
_HEARTBEAT = ("INSERT INTO verifier_instances (id, seen_at) VALUES (?, ?) "
              "ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at")
_ALIVE = "SELECT count(*) FROM verifier_instances WHERE seen_at > ?"
_GONE = "DELETE FROM verifier_instances WHERE seen_at <= ? OR id = ?"
_LOCKED = "SELECT locked_until FROM limit_failures WHERE scope = ? AND device_id = ? AND host = ?"
_TRUST = ("INSERT INTO limit_trusted (scope, device_id, host, at, ttl_s) "
          "SELECT ?, x.d, x.h, x.at, x.ttl FROM unnest(?::bytea[], ?::text[], ?::bigint[], ?::bigint[]) AS x(d, h, at, ttl) "
          "ON CONFLICT (scope, device_id, host) DO UPDATE SET at = GREATEST(limit_trusted.at, excluded.at), "
          "ttl_s = excluded.ttl_s")
_TRUST_PRUNE = ("DELETE FROM limit_trusted WHERE (scope, device_id, host) IN (SELECT scope, device_id, host FROM "
                "(SELECT scope, device_id, host, row_number() OVER (PARTITION BY device_id ORDER BY at DESC) AS n "
                "FROM limit_trusted WHERE scope = ? AND device_id = ANY(?::bytea[])) AS r WHERE r.n > ?)")
_TRUSTED_OF = ("SELECT device_id, host, at, ttl_s FROM limit_trusted WHERE scope = ? AND device_id = ANY(?::bytea[]) "
               "ORDER BY at")


def _is_budget(key):
    # the failure budget's bucket is (scope, "budget", device id) (verifier.registry.lockout); the rate limits'
    # buckets are a host (str), a device id (bytes) and (tenant id, host)
    return type(key) is tuple and len(key) == 3 and key[1] == "budget"


class PGLimitStore(MemoryLimitStore):
    """Lockouts in the database (module docstring), rate limits in memory."""

    shared = True

    def __init__(self, url, storage):
        super().__init__()
        self._url = url
        self._storage = storage    # its auth thread carries the batches (PGStorage.in_auth_thread)
        self._db = None            # the direct calls' own connection (opened at the first)
        self._trust_loaded = set()  # (scope, device id) whose trusted hosts were read from the database
        self._batch = None         # the batch being decided (begin_async .. commit_async), else None
        self._pruned_at = None     # when failure rows were last pruned (None: not yet)

    share = 1.0                # this instance's share of each rate (1 / instances alive)

    def close(self):
        if self._db is not None:
            db, self._db = self._db, None
            db.close()

    def _direct(self, sql, args):
        try:
            if self._db is None:
                self._db = pgconn.PGConnection(self._url)
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as e:
            self.close()           # a lost connection is opened again by the next call
            raise StorageError(f"lockout state: {e}") from e

    # ------------------------------------------------------------------ LimitStore (direct or batch)
    def take(self, key, capacity, refill_per_s, now):
        if not _is_budget(key):
            share = self.share
            return super().take(key, max(1.0, capacity * share), refill_per_s * share, now)
        b = self._batch
        if b is not None and key[0] == b.scope:
            left = b.grants.get(key[2], 0)
            if left <= 0:
                return False
            b.grants[key[2]] = left - 1
            return True
        did = bytes(key[2])
        self._direct(_BUDGET_ROWS, (key[0], now, [did], [capacity], [refill_per_s]))
        rows = self._direct(_GRANT, (now, now, now, now, [did], [1], [capacity], [refill_per_s], key[0]))
        return bool(rows and rows[0][1])

    def give(self, key, capacity, refill_per_s, now):
        if not _is_budget(key):
            share = self.share
            return super().give(key, max(1.0, capacity * share), refill_per_s * share, now)
        b = self._batch
        if b is not None and key[0] == b.scope:
            b.given[key[2]] = b.given.get(key[2], 0) + 1
            return
        self._direct(_GIVE, (now, now, [bytes(key[2])], [1], key[0]))

    def locked_until(self, key, now):
        b = self._batch
        if b is not None and key[0] == b.scope:
            return b.view.locked_until(key, now)
        rows = self._direct(_LOCKED, (key[0], bytes(key[1]), key[2]))
        until = rows[0][0] if rows else 0
        if until and now >= until:
            self._direct(_RESET, ([bytes(key[1])], [key[2]], key[0]))   # over: the count starts again
            return 0
        return until

    def fail(self, key, threshold, lockout_s, now):
        b = self._batch
        if b is not None and key[0] == b.scope:
            started = b.view.fail(key, threshold, lockout_s, now)
            j = b.failed.setdefault(key[1:], [0, 0, 0, 0])
            j[0] += 1
            j[1:] = [now, lockout_s, threshold]
            return started
        rows = self._direct(_FAIL, (key[0], [bytes(key[1])], [key[2]], [1], [now], [lockout_s], [threshold]))
        if self._prune_due(now):
            self._direct(_PRUNE, (now, now))
        return bool(rows) and rows[0][2] == now + lockout_s

    def _prune_due(self, now):
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_S:
            return False
        self._pruned_at = now
        return True

    def succeed(self, key):
        b = self._batch
        if b is not None and key[0] == b.scope:
            if key in b.view._failures or key[1:] in b.failed:
                b.reset.add(key[1:])
                b.failed.pop(key[1:], None)
            b.view.succeed(key)
            return
        self._direct(_RESET, ([bytes(key[1])], [key[2]], key[0]))

    def trusted(self, key, host, now):
        if super().trusted(key, host, now):
            return True
        b = self._batch
        if b is not None and key[0] == b.scope:
            return False                 # begin_async read the batch's devices' hosts
        # not trusted here: perhaps by another instance (a direct call costs a statement only for such a host)
        self._load_trusted(key[0], self._direct(_TRUSTED_OF, (key[0], [bytes(key[1])])), [key[1]])
        return super().trusted(key, host, now)

    def trust(self, key, host, now, max_hosts, ttl_s):
        hosts = self._trusted.get(key)
        old = hosts.get(host) if hosts else None
        super().trust(key, host, now, max_hosts, ttl_s)
        if old is not None and now - old[0] < TRUST_REFRESH_S:
            return                       # the database has it, recent enough
        b = self._batch
        if b is not None and key[0] == b.scope:
            b.trusted[key[1:] + (host,)] = (now, ttl_s, max_hosts)
            return
        did = bytes(key[1])
        self._direct(_TRUST, (key[0], [did], [host], [now], [ttl_s]))
        if old is None:
            self._direct(_TRUST_PRUNE, (key[0], [did], max_hosts))

    def _load_trusted(self, scope, rows, device_ids):
        if len(self._trust_loaded) >= TRUST_LOADED_MAX:
            self._trust_loaded.clear()
        for did in device_ids:
            self._trust_loaded.add((scope, bytes(did)))
        for did, host, at, ttl_s in rows:        # oldest first: MemoryLimitStore keeps the most recent last
            hosts = self._trusted.setdefault((scope, bytes(did)), {})
            if host not in hosts or hosts[host][0] < at:
                hosts.pop(host, None)
                hosts[host] = [at, ttl_s]

    # ------------------------------------------------------------------ binary auth's batches
    async def heartbeat_async(self, instance_id, now, gone=False):
        """Say this instance is alive at `now` (wall-clock seconds) and take its share of the rates from the count
        of instances alive; `gone`: remove its row (at shutdown)."""
        if gone:
            await self._storage.in_auth_thread(_rows, _GONE, (int(now) - 86400, instance_id))
            return
        alive = await self._storage.in_auth_thread(_heartbeat, instance_id, int(now))
        self.share = 1.0 / max(1, alive)

    def trusted_here(self, key, host, now):
        """trusted() as this instance knows it, without asking the database."""
        return MemoryLimitStore.trusted(self, key, host, now)

    def begin_closed(self, scope, now):
        """Begin a batch that nothing could be prepared for: no budget token, and its commit fails."""
        b = self._batch = _Batch(scope, now)
        b.error = StorageError("lockout state: the batch could not be prepared")

    async def begin_async(self, scope, device_ids, wants, now):
        """Start deciding a batch of `scope`, in one call on the auth thread: read the trusted hosts of the devices not
        read yet and of those in `wants` ({device id: (n, capacity, refill_per_s)}: another instance may have trusted their hosts),
        take the budget tokens of `wants`, and read the failure rows of `device_ids`. Decided closed if the database
        refuses."""
        b = _Batch(scope, now)
        ids = sorted({bytes(d) for d in device_ids})
        trust_ids = sorted({d for d in ids if (scope, d) not in self._trust_loaded} | set(wants))
        try:
            trusted, granted, failures = await self._storage.in_auth_thread(_begin, scope, ids, trust_ids, wants, now)
        except (sqlite3.Error, StorageError) as e:
            # tokens granted but not received stay taken: the budget errs on the safe side
            b.error = StorageError(f"lockout state: {e}")
            trusted, granted, failures = (), {}, ()
        if trust_ids and b.error is None:
            self._load_trusted(scope, trusted, trust_ids)
        b.grants = granted
        view = b.view._failures
        for did, host, count, until, last, lockout_s in failures:
            view[(scope, bytes(did), host)] = [count, until, last, lockout_s]
        self._batch = b

    async def commit_async(self):
        """Write what the batch begun last changed; raises StorageError if it could not (or could not begin)."""
        b, self._batch = self._batch, None
        if b is None:
            return
        if b.error is not None:
            raise b.error
        back = {d: b.given.get(d, 0) + left for d, left in b.grants.items()}
        work = (sorted(b.reset), sorted(b.failed.items()), sorted((d, n) for d, n in back.items() if n > 0),
                sorted(b.trusted.items()))
        if any(work):
            prune = bool(b.failed) and self._prune_due(int(b.now))
            try:
                await self._storage.in_auth_thread(_commit, b.scope, b.now, *work, prune)
            except sqlite3.Error as e:
                raise StorageError(f"lockout state: {e}") from e

    def abandon(self):
        """Forget the batch begun last without writing it (its decisions are not sent)."""
        self._batch = None


class _Batch:
    """What one batch of one scope is decided against and what it changes."""

    def __init__(self, scope, now):
        self.scope, self.now = scope, now
        self.view = MemoryLimitStore()     # the failure rows of the batch's devices, as read at begin
        self.grants = {}                   # device id -> budget tokens taken for it and not used yet
        self.given = {}                    # device id -> tokens to give back (their tags verified)
        self.failed = {}                   # (device id, host) -> [failures, last time, lockout_s, threshold]
        self.reset = set()                 # (device id, host) whose count an accepted request reset
        self.trusted = {}                  # (device id, host) -> (at, ttl_s, max_hosts)
        self.error = None


def _rows(db, sql, args):
    return db.execute(sql, args).fetchall()


def _heartbeat(db, instance_id, now):
    db.execute(_HEARTBEAT, (instance_id, now))
    return db.execute(_ALIVE, (now - ALIVE_S,)).fetchone()[0]


def _begin(db, scope, device_ids, trust_ids, wants, now):
    # on the auth path's thread: the trusted hosts of trust_ids, the budget tokens of `wants`, the failure rows
    trusted = db.execute(_TRUSTED_OF, (scope, trust_ids)).fetchall() if trust_ids else ()
    granted = {}
    if wants:
        ids = sorted(wants)
        caps = [float(wants[d][1]) for d in ids]
        rates = [float(wants[d][2]) for d in ids]
        db.execute(_BUDGET_ROWS, (scope, now, ids, caps, rates))
        for did, n in db.execute(_GRANT, (now, now, now, now, ids, [wants[d][0] for d in ids], caps, rates,
                                          scope)).fetchall():
            granted[bytes(did)] = n
    return trusted, granted, db.execute(_FAILURES_OF, (scope, device_ids)).fetchall()


def _commit(db, scope, now, reset, failed, back, trusted, prune=False):
    # on the auth path's thread: what one batch changed (module docstring), one statement each
    if reset:
        db.execute(_RESET, ([k[0] for k in reset], [k[1] for k in reset], scope))
    if failed:
        db.execute(_FAIL, (scope, [k[0] for k, _ in failed], [k[1] for k, _ in failed], [j[0] for _, j in failed],
                           [j[1] for _, j in failed], [j[2] for _, j in failed], [j[3] for _, j in failed]))
    if back:
        db.execute(_GIVE, (now, now, [d for d, _ in back], [n for _, n in back], scope))
    if trusted:
        db.execute(_TRUST, (scope, [k[0] for k, _ in trusted], [k[1] for k, _ in trusted],
                            [v[0] for _, v in trusted], [v[1] for _, v in trusted]))
        db.execute(_TRUST_PRUNE, (scope, sorted({k[0] for k, _ in trusted}), max(v[2] for _, v in trusted)))
    if prune:
        db.execute(_PRUNE, (int(now), int(now)))
