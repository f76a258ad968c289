"""Bounded audit of refusals that come before any authentication (docs/tokens.md 3.2).

An offline chain token is checked for shape and signature before anything proves who sent it, so junk can
name any device id it likes. Each such refusal is still counted, but only a bounded number become audit
rows: per key (the device the token names, or None for no known device) a token bucket of BURST rows,
refilled at REFILL_PER_S, in the LimitStore (so several instances sharing a store share the budget). The
refusals a bucket turns away are counted here, and the next row let through for that key carries the count
in its detail. What this module deliberately does not do: decide refusals, or write rows itself.
"""

BURST = 10                      # rows per key at once
REFILL_PER_S = 10 / 3600        # then 10 rows per hour per key
MAX_KEYS = 10_000               # keys with a pending count; past this they share one overflow count
OVERFLOW = ("overflow",)


class RefusalSampler:
    def __init__(self, limits, burst=BURST, refill_per_s=REFILL_PER_S):
        self._limits, self._burst, self._refill = limits, burst, refill_per_s
        self._dropped = {}      # key -> refusals not audited since that key's last row

    def admit(self, key, now):
        """None if this refusal is only counted; else the detail suffix for its row ("" when nothing was
        dropped before it, else "N similar refusals not audited since the previous row")."""
        if self._limits.take(("refusal-audit", key), self._burst, self._refill, now):
            n = self._dropped.pop(key, 0) + (self._dropped.pop(OVERFLOW, 0) if key is None else 0)
            return f"{n} similar refusals not audited since the previous row" if n else ""
        if key not in self._dropped and len(self._dropped) >= MAX_KEYS:
            key = OVERFLOW
        self._dropped[key] = self._dropped.get(key, 0) + 1
        return None

    def dropped(self):
        """How many refusals wait to be reported in a row (all keys)."""
        return sum(self._dropped.values())


def join_detail(*parts):
    """The non-empty parts joined with "; ", or None."""
    text = "; ".join(p for p in parts if p)
    return text or None
