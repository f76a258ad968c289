"""The failure lockout shared by binary auth, DTLS and MQTT/http-basic (docs/protocol.md section 3.4):
which failures count, against what, and who is refused. Sans-IO: the state lives behind a
verifier.registry.limits.LimitStore, `now` is a parameter.

Each protocol (`scope`: "binauth", "dtls", "mqtt") has its own state: a wrong tag does not count
against the DTLS key, and an accepted DTLS handshake does not reset binary-auth failures.

For a device D and the source host H of a request (the IP address, without the port):
- (D, H) has a consecutive-failure lockout: `lockout_failures` failures from H lock H out of D for
  `lockout_s`; only an accepted request (OK) from H resets the count, and the count starts again when
  the lockout ends (or after `lockout_s` without a failure). Junk from other hosts cannot lock H out.
- D has a failure budget: a token bucket of `lockout_failures` tokens refilled at
  `lockout_failures / lockout_s` per second. A request from a host that is not trusted for D takes one
  token before its tag is checked and gets it back if the tag verifies; with the budget empty it is
  refused LOCKED_OUT without a check. This bounds the guessing of all untrusted hosts together.
- D's trusted hosts are the last `TRUSTED_HOSTS` hosts it was accepted from within `TRUST_S`; they
  take nothing from the budget, so an exhausted budget does not lock the genuine device out.
`lockout_s` = 0 turns all of it off (the tenant chose no lockout).

What this module deliberately does not do: rate limiting of accepted requests (the device bucket)
and of sources (the source buckets); the callers take those.
"""

TRUSTED_HOSTS = 4            # per device and protocol
TRUST_S = 30 * 86400         # a host stays trusted this long after the device's last OK from it

# charge() results
TRUSTED, CHARGED, EXHAUSTED = "trusted", "charged", "exhausted"


class Lockout:
    def __init__(self, limits, scope):
        self._limits = limits
        self._scope = scope

    def locked(self, did, host, tnow):
        """True while `host` is locked out of device `did`."""
        return bool(self._limits.locked_until((self._scope, did, host), tnow))

    def charge(self, did, host, pol, now):
        """Before a check of the device's secret: TRUSTED (free), CHARGED (one budget token taken: hand
        it to verified()), or EXHAUSTED (refuse LOCKED_OUT without checking)."""
        if pol.lockout_s <= 0 or self._limits.trusted((self._scope, did), host, int(now)):
            return TRUSTED
        if self._limits.take((self._scope, "budget", did), pol.lockout_failures,
                             pol.lockout_failures / pol.lockout_s, now):
            return CHARGED
        return EXHAUSTED

    def verified(self, did, charge, pol, now):
        """The secret checked out (whatever the answer will be): a guess it was not, give the token back."""
        if charge == CHARGED:
            self._limits.give((self._scope, "budget", did), pol.lockout_failures,
                              pol.lockout_failures / pol.lockout_s, now)

    def failed(self, did, host, pol, tnow):
        """A wrong secret from `host`: True if this failure started the host's lockout."""
        return self._limits.fail((self._scope, did, host), pol.lockout_failures, pol.lockout_s, tnow)

    def accepted(self, did, host, tnow):
        """An accepted request (OK) from `host`: reset its count and trust it."""
        self._limits.succeed((self._scope, did, host))
        self._limits.trust((self._scope, did), host, tnow, TRUSTED_HOSTS, TRUST_S)
