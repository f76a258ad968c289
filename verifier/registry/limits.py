"""Rate-limit and lockout state: token buckets, consecutive-failure lockouts and the small sets of
hosts a device recently authenticated from; time injected, no I/O.

`LimitStore` is the interface (part of the storage layer); `MemoryLimitStore` keeps the state in
process memory, which is correct for a single verifier instance only. A shared store (PostgreSQL,
Redis) implements the same seven methods for several instances; each is one atomic step on one key, so
it maps to one row update. What the keys mean and how the methods combine into the binary-auth, DTLS
and MQTT/http-basic lockouts is verifier.registry.lockout (docs/protocol.md section 3.4).

Times: `now` for buckets is the clock as given (fractional seconds: buckets refill continuously);
lockout and trust times are whatever the caller passes (verifier.registry.lockout passes whole seconds).

Nothing unauthenticated grows the state without bound: buckets idle long enough to be full, failure
counts whose lockout is over or that saw no failure for `lockout_s`, and trusted hosts older than
their `ttl_s` are pruned when a table reaches its cap. (How many failure entries an attacker can make
per device is bounded by verifier.registry.lockout's failure budget; trusted sets only grow from accepted
authentications.)
"""


class LimitStore:
    """Interface of rate-limit and lockout state."""

    def take(self, key, capacity, refill_per_s, now):
        """Take one token from bucket `key`; return False if it is empty."""
        raise NotImplementedError

    def give(self, key, capacity, refill_per_s, now):
        """Put back one token taken from bucket `key` (never above `capacity`)."""
        raise NotImplementedError

    def locked_until(self, key, now):
        """Return the end of a lockout in force at `now`, else 0. Once a lockout has ended, the
        failure count of `key` starts again from zero."""
        raise NotImplementedError

    def fail(self, key, threshold, lockout_s, now):
        """Count one consecutive failure; start a lockout of `lockout_s` at `threshold`. Return True if
        it started. A count that saw no failure for `lockout_s` starts again from zero."""
        raise NotImplementedError

    def succeed(self, key):
        """Reset the consecutive-failure count."""
        raise NotImplementedError

    def trusted(self, key, host, now):
        """True if `trust(key, host, ...)` was called less than its `ttl_s` before `now`."""
        raise NotImplementedError

    def trust(self, key, host, now, max_hosts, ttl_s):
        """Remember `host` for `key` (at most `max_hosts` per key: the least recent one goes)."""
        raise NotImplementedError


class MemoryLimitStore(LimitStore):
    """In-process state (single instance), capped and pruned."""

    MAX_BUCKETS = 1_000_000
    MAX_FAILURES = 1_000_000
    MAX_TRUSTED = 1_000_000     # keys with a trusted set (each holds at most its max_hosts)

    def __init__(self):
        self._buckets = {}    # key -> [tokens, last_now, capacity, refill_per_s]
        self._failures = {}   # key -> [count, locked_until, last_failure, lockout_s]
        self._trusted = {}    # key -> {host: [trusted_at, ttl_s]}, least recent first

    def sizes(self):
        """Entries per table (buckets, failures, trusted keys): for tests and metrics."""
        return len(self._buckets), len(self._failures), len(self._trusted)

    def take(self, key, capacity, refill_per_s, now):
        b = self._buckets.get(key)
        if b is None:
            if len(self._buckets) >= self.MAX_BUCKETS:
                self._prune(now)
            self._buckets[key] = [capacity - 1.0, now, capacity, refill_per_s]
            return True
        tokens = b[0] + (now - b[1]) * refill_per_s
        if tokens > capacity:
            tokens = capacity
        b[1] = now
        b[2] = capacity
        b[3] = refill_per_s
        if tokens < 1.0:
            b[0] = tokens
            return False
        b[0] = tokens - 1.0
        return True

    def give(self, key, capacity, refill_per_s, now):
        b = self._buckets.get(key)
        if b is None:
            return                # a missing bucket is a full one
        tokens = b[0] + (now - b[1]) * refill_per_s + 1.0
        b[0] = capacity if tokens > capacity else tokens
        b[1] = now

    def _prune(self, now):
        full = [k for k, (t, last, cap, r) in self._buckets.items() if t + (now - last) * r >= cap]
        for k in full:
            del self._buckets[k]

    def locked_until(self, key, now):
        f = self._failures.get(key)
        if f is None or f[1] == 0:
            return 0
        if now >= f[1]:
            del self._failures[key]   # lockout over: the count starts again
            return 0
        return f[1]

    def fail(self, key, threshold, lockout_s, now):
        f = self._failures.get(key)
        if f is not None and f[1] == 0 and now - f[2] >= lockout_s:
            f = None                  # no failure for lockout_s: the count starts again
        if f is None:
            if len(self._failures) >= self.MAX_FAILURES:
                self._prune_failures(now)
            f = self._failures[key] = [0, 0, now, lockout_s]
        f[0] += 1
        f[2], f[3] = now, lockout_s
        if f[0] >= threshold and f[1] == 0:
            f[1] = now + lockout_s
            return True
        return False

    def _prune_failures(self, now):
        idle = [k for k, (n, until, last, lockout_s) in self._failures.items()
                if (until and now >= until) or (not until and now - last >= lockout_s)]
        for k in idle:
            del self._failures[k]

    def succeed(self, key):
        self._failures.pop(key, None)

    def trusted(self, key, host, now):
        hosts = self._trusted.get(key)
        t = hosts.get(host) if hosts else None
        return t is not None and now - t[0] < t[1]

    def trust(self, key, host, now, max_hosts, ttl_s):
        hosts = self._trusted.get(key)
        if hosts is None:
            if len(self._trusted) >= self.MAX_TRUSTED:
                self._prune_trusted(now)
            hosts = self._trusted[key] = {}
        hosts.pop(host, None)
        hosts[host] = [now, ttl_s]    # most recent last
        while len(hosts) > max_hosts:
            del hosts[next(iter(hosts))]

    def _prune_trusted(self, now):
        for key in list(self._trusted):
            hosts = self._trusted[key]
            for host in [h for h, (at, ttl) in hosts.items() if now - at >= ttl]:
                del hosts[host]
            if not hosts:
                del self._trusted[key]
