"""Rate-limit and lockout state: token buckets and consecutive-failure lockouts, time injected.

`LimitStore` is the interface (part of the storage layer); `MemoryLimitStore` keeps the state in
process memory, which is correct for a single verifier instance only. A shared store (PostgreSQL,
Redis) implements the same four methods for several instances.
"""


class LimitStore:
    """Interface of rate-limit and lockout state."""

    def take(self, key, capacity, refill_per_s, now):
        """Take one token from bucket `key`; return False if it is empty."""
        raise NotImplementedError

    def locked_until(self, key, now):
        """Return the end of a lockout in force at `now`, else 0."""
        raise NotImplementedError

    def fail(self, key, threshold, lockout_s, now):
        """Count one consecutive failure; start a lockout at `threshold`. Return True if it started."""
        raise NotImplementedError

    def succeed(self, key):
        """Reset the consecutive-failure count."""
        raise NotImplementedError


class MemoryLimitStore(LimitStore):
    """In-process state (single instance). Buckets idle long enough to be full are pruned."""

    MAX_BUCKETS = 1_000_000

    def __init__(self):
        self._buckets = {}    # key -> [tokens, last_now]
        self._failures = {}   # key -> [count, locked_until]

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
        f = self._failures.setdefault(key, [0, 0])
        f[0] += 1
        if f[0] >= threshold and f[1] == 0:
            f[1] = now + lockout_s
            return True
        return False

    def succeed(self, key):
        self._failures.pop(key, None)
