"""Endpoint failover for binary auth (docs/protocol.md 3.7): the board's endpoints, the order to try them
in, the wait between rounds, the driver that tries them (`attempt`), and what the state file keeps about
the one that answered (`record`).

The schedule and the order are pure functions; `attempt()` runs them with the transports (udp.py, http.py),
a sleep and the randomness, all injectable. Nothing here writes: the endpoint used rides in the state file
that run() writes anyway, so failing over costs no extra flash write. app.run() unloads this module after
each run, so its code holds no heap while the token step runs.
"""

import time
from micropython import const
from janua import TransportError
from janua.binauth import Client

_BASE_MS = const(1000)      # the wait before the second round; doubled for each further round...
_CAP_MS = const(8000)       # ...up to this
_ROUNDS = const(3)          # passes over the whole list
_MAX_S = const(60)          # no new attempt starts after this many seconds
_RETRY_S = const(3600)      # a backup that answered is tried first for this long, then the preferred again


def endpoints(cfg):
    """The ordered endpoint list: janua.json "endpoints" when it is a non-empty list (it wins), else the one
    "server" of a board provisioned before endpoints existed."""
    eps = cfg.get("endpoints")
    return eps if isinstance(eps, list) and eps else [cfg["server"]]


def settings(cfg):
    """(rounds, base_ms, cap_ms, max_s, retry_preferred_s) from janua.json "failover", with the defaults. A
    board without "endpoints" makes one round, as before endpoints existed."""
    f = cfg.get("failover")
    f = f if isinstance(f, dict) else {}
    return (f.get("rounds", _ROUNDS if cfg.get("endpoints") else 1), f.get("backoff_ms", _BASE_MS), f.get("max_backoff_ms", _CAP_MS),
            f.get("max_s", _MAX_S), f.get("retry_preferred_s", _RETRY_S))


def _last(state):
    # (index, since) of the backup the last run used, else (0, None)
    ep = state.get("endpoint")
    i = ep[0] if isinstance(ep, list) and ep and isinstance(ep[0], int) else 0
    return i, state.get("failover_at")


def order(n, state, now, retry_s):
    """Indices of the `n` endpoints in the order to try them: a backup that answered the last run first while
    it has been in use for less than `retry_s` seconds (a board does not wait on a dead preferred endpoint at
    every boot), then the others in list order. A clock that reads before that time (a reset without an
    RTC) does not keep the backup: the preferred endpoint is tried first."""
    i, since = _last(state)
    if not (0 < i < n and isinstance(since, int) and 0 <= now - since < retry_s):
        i = 0
    return [i] + [j for j in range(n) if j != i]


def since(state, used, now, retry_s):
    """The "failover_at" to store after a run answered by endpoint `used`: None on the preferred endpoint,
    the stored time while the same backup is still within its `retry_s` window, else now (a new window)."""
    if used <= 0:
        return None
    i, at = _last(state)
    return at if i == used and isinstance(at, int) and 0 <= now - at < retry_s else now


def delay_ms(rnd, rand, base=_BASE_MS, cap=_CAP_MS):
    """The wait before round `rnd` (1 = the second pass), "equal jitter": half of min(cap, base * 2**(rnd-1))
    plus a random part of the other half, from two bytes of `rand(n)`. Boards that lost the same endpoint at
    the same moment do not come back in step."""
    d = min(cap, base << (rnd - 1)) // 2
    r = rand(2)
    return d + d * ((r[0] << 8) | r[1]) // 65536


def randomness():
    # os.urandom where the port has it (probed, not assumed); without it the waits are still bounded, only
    # without jitter (a fixed middle value)
    try:
        from os import urandom
        return urandom
    except ImportError:
        return lambda n: b"\x80" * n


def attempt(cfg, clock, dev, mac, last_sent, tail, state, sleep=None, rand=None):
    """(client, transport name, endpoint index or -1): rounds over the endpoints until one answers. An
    endpoint has answered when one reply was authenticated (OK, NOT_ACTIVE, a TIME_SYNC/REPLAY): that ends
    the run, a refusal included. Silence, a network, name or TLS error, an HTTP error without a valid reply
    and an unauthenticated reply (which anyone could send) move on to the next endpoint (for transport auto:
    after UDP, then HTTP); between rounds, a backoff with jitter (delay_ms); no round starts past max_s."""
    eps = endpoints(cfg)
    rounds, base, cap, max_s, retry_s = settings(cfg)
    mode = cfg.get("transport", "auto")
    order_ = ("udp", "http") if mode == "auto" else (mode,)
    sleep = sleep or time.sleep_ms
    rand = rand or randomness()
    start = time.ticks_ms()
    waited = 0
    tls = client = name = None
    for rnd in range(rounds):
        if rnd:
            d = delay_ms(rnd, rand, base, cap)
            # bounded: no round starts past max_s (the waits count, also with an injected sleep)
            if max(time.ticks_diff(time.ticks_ms(), start), waited) + d > max_s * 1000:
                break
            sleep(d)
            waited += d
        for i in order(len(eps), state, clock.now(), retry_s):
            srv = eps[i]
            for name in order_:
                client = Client(dev, mac, clock, last_sent, tail=tail)
                try:
                    if name == "udp":
                        from janua import udp
                        udp.authenticate(client, srv["host"], srv.get("udp_port", 5685),
                                         cfg.get("udp_timeout", 2.0))
                    else:
                        from janua import http
                        if tls is None and srv.get("tls") is True:  # HTTPS (janua.https), loaded only then
                            from janua.https import context
                            tls = context(cfg)
                        http.authenticate(client, srv["host"], srv.get("http_port", 8080),
                                          cfg.get("http_timeout", 5.0), tls if srv.get("tls") is True else None)
                except TransportError as e:     # a name that does not resolve, no tls module: the next one
                    client.give_up(str(e))
                last_sent = client.last_sent
                if client.result is not None:       # authenticated: an answer, never a reason to fail over
                    return client, name, i
    return client, name, -1


def record(cfg, state, now, used, reason):
    """(new state's fields, line suffix, failure reason) for a run answered by endpoint `used` (-1: none).
    The fields: "endpoint" [index, host, tls] and, on a backup, "failover_at"; the suffix " endpoint=I:HOST"
    on a backup; the reason says "no endpoint answered" when a list had none answer."""
    new = {}
    ep = ""
    if used >= 0:
        srv = endpoints(cfg)[used]
        new["endpoint"] = [used, srv["host"], srv.get("tls") is True]
        t = since(state, used, now, settings(cfg)[4])
        if t is not None:
            new["failover_at"] = t
            ep = " endpoint=%d:%s" % (used, srv["host"])
    elif cfg.get("endpoints"):
        reason = "no endpoint answered: %s" % reason
    return new, ep, reason
