"""The boot flow: load the store, bring the network up, claim an identity when the board holds only a
factory claim image (janua.claim), authenticate, record the outcome.

`run()` returns one line for the console and never raises a JanuaError or OSError (main.py must
not crash a board into a reboot loop). Key derivation happens here, once per boot. The protocol
logic lives in binauth.py; the transports in udp.py and http.py.

A quarantined device (docs/protocol.md 3.4) gets an authenticated NOT_ACTIVE (binary auth) or a
CoAP 4.03 "quarantined" (DTLS): run() reports it as a failure, but the verifier still serves the
board's OTA check and attestation, so main.py goes on to its scheduled OTA check as after any run()
(the clock was set by the authenticated reply), and `confirmable(line)` lets an application in
trial confirm itself: a repair update must not be rolled back because the board is quarantined.
"""

# run()'s lines that show the verifier answered this device authentically (app.confirmable)
_REACHED = ("janua: authenticated", "janua: auth failed: not_active", "janua: auth failed: dtls: quarantined")

from binascii import unhexlify
import janua
from janua import JanuaError, health_c, note_error, sample
from janua.store import Store
from janua.clock import Clock


def _hal():
    try:
        import janua_hal
        return janua_hal
    except ImportError:
        return None


def _boots(state):
    # The boot count for attestation (docs/attestation.md 2.2, record 0x07): one more the first time
    # run() runs in this boot. The mark lives on the janua package object, which main.py's unloading
    # keeps (it drops janua.* only) and every reset clears; the count rides in the state file that
    # run() writes anyway, so counting costs no extra flash write.
    import janua
    n = state.get("boots", 0)
    n = n if isinstance(n, int) else 0
    if not getattr(janua, "boot_counted", False):
        janua.boot_counted = True
        n += 1
    return n


def _report(cfg, state, clock, hal):
    # this run's health report (docs/health.md) when one is due, else None; never fails the run
    try:
        from janua import health
        if health.due(cfg, state, clock.now(), not getattr(janua, "health_sent", False)):
            return health.report(hal, state["boots"])
    except Exception as e:  # a hal or flash that cannot answer costs the report, not the auth
        note_error(e)
    return None


def authenticate(cfg, clock, last_sent=0, report=None, state=None, sleep=None, rand=None):
    """(client, transport name, endpoint index or -1): janua.failover.attempt() with this board's keys;
    `report` (bytes or None) rides on each request with its tag (docs/health.md 2.1)."""
    from janua.hkdf import derive
    from janua.mac import HMAC
    from janua import failover as _f
    import gc
    gc.collect()        # the imports' garbage gone before what lives through the exchange (a TLS context
                        # needs a 3 KiB block in one piece: docs/protocol.md 3.5)
    master = unhexlify(cfg["master_secret"])
    mac = HMAC(derive(master, "binauth"))
    tail = None
    if report:
        from janua.health import tail as _tail
        tail = _tail(derive(master, "health"), report)
    return _f.attempt(cfg, clock, unhexlify(cfg["device_id"]), mac, last_sent, tail, state or {}, sleep, rand)


def confirmable(line):
    """True when run()'s `line` shows that the verifier answered this device authentically: it
    authenticated, or it was refused as not active (binary auth NOT_ACTIVE: quarantined, or
    suspended while in trial) or quarantined (DTLS). An application in trial confirms itself on it
    (docs/ota.md 7.5): the new version boots, reaches the verifier and holds the device's keys."""
    for head in _REACHED:
        # "not_active (unauthenticated reply)" is an advisory anyone could have sent: not an answer
        if line.startswith(head) and not line[len(head):].startswith(" (unauth"):
            return True
    return False


def run(store=None, clock=None):
    store = store or Store()
    clock = clock or Clock()
    claimed = ""
    try:
        cfg = store.load_config()
    except JanuaError as e:
        # no identity: a factory claim image claims one (docs/claims_board.md), else the console line
        from janua.claim import boot
        cfg = boot(store, e, _hal())
        if isinstance(cfg, str):
            return cfg
        claimed = " (claimed)"
    hal = _hal()
    try:
        if hal is not None:
            hal.connect_network(cfg)
    except (OSError, JanuaError) as e:
        return "janua: auth failed: network: %s" % e
    return _run(cfg, store, clock, hal) + claimed


def _run(cfg, store, clock, hal):
    state = store.load_state()
    state["boots"] = _boots(state)
    rep = _report(cfg, state, clock, hal)
    if cfg.get("transport") == "dtls":
        return _run_dtls(cfg, clock, store, state, rep)
    try:
        client, via, used = authenticate(cfg, clock, state.get("last_sent", 0), rep, state)
    except (OSError, JanuaError) as e:
        note_error(e)
        health_c[1] += 1
        return "janua: auth failed: %s" % e
    sample()
    r = client.result
    new, ep, why = _endpoint(cfg, state, clock, used, client.reason)
    if client.reason is None and r is not None:
        line = "janua: authenticated device=%s via %s%s session=%d expires=%d" % (
            cfg["device_id"], via, ep, r[2], r[3])
        new.update(result="ok", session=r[2], expires=r[3], permissions=r[4])
        if new["endpoint"][2]:
            _set_clock(clock, hal)
        if rep:
            new["health_at"] = clock.now()
            janua.health_sent = True        # this boot has reported (package object: kept across its runs)
    else:
        health_c[1] += 1
        line = "janua: auth failed: %s%s" % (why, ep)
        new["result"] = "failed: %s" % why
    _keep(state, new)
    new["at"] = clock.now()
    new["clock_source"] = clock.source
    new["transport"] = via
    new["last_sent"] = client.last_sent
    new["boots"] = state["boots"]
    try:
        store.save_state(new)
    except JanuaError as e:
        line += " (state not saved: %s)" % e
    if cfg.get("tokens"):
        from janua.tokenapp import run as _tokens
        line += _tokens(cfg, store, clock, client.reason is None and r is not None)
    return line


def _endpoint(cfg, state, clock, used, reason):
    # the state's record of the endpoint used; janua.failover then unloaded, its heap back for the tokens
    import sys
    from janua import failover as _f
    out = _f.record(cfg, state, clock.now(), used, reason)
    del sys.modules["janua.failover"]
    if hasattr(janua, "failover"):
        delattr(janua, "failover")
    import gc
    gc.collect()
    return out


def _set_clock(clock, hal):
    # HTTPS (docs/protocol.md 3.5): the board's own clock, which mbedTLS reads, to the server's time
    from janua.https import set_clock
    t = clock.now()
    if set_clock(t, hal):
        clock.set_from_server(t)        # the clock's correction is now (about) nothing


def _keep(state, new):
    # the last report's time survives a run that sent none (docs/health.md 2.5)
    if "health_at" not in new and "health_at" in state:
        new["health_at"] = state["health_at"]


def _run_dtls(cfg, clock, store, state, rep=None):
    # DTLS-lite + CoAP POST /auth (dtlsauth.py), then the health report as POST /telemetry in the same
    # session when one is due; the binary-auth replay state is left as it was.
    from janua.dtlsauth import authenticate as dtls_auth
    import gc
    gc.collect()        # as in authenticate(): the import's garbage gone before the handshake's buffers
    new = {"last_sent": state.get("last_sent", 0), "transport": "dtls", "clock_source": clock.source,
           "boots": state["boots"]}
    try:
        doc = dtls_auth(cfg, rep)
        line = "janua: authenticated device=%s via dtls session=%d expires=%d" % (
            cfg["device_id"], doc["session"], doc.get("expires", 0))
        new.update(result="ok", session=doc["session"], expires=doc.get("expires", 0),
                   permissions=doc.get("permissions", 0))
        h = doc.get("health")
        if h == "ok":
            new["health_at"] = clock.now()
            janua.health_sent = True
        elif h:
            line += " (health report: %s)" % h
    except (OSError, JanuaError) as e:
        note_error(e)
        health_c[1] += 1
        line = "janua: auth failed: dtls: %s" % e
        new["result"] = "failed: dtls: %s" % e
    _keep(state, new)
    new["at"] = clock.now()
    try:
        store.save_state(new)
    except JanuaError as e:
        line += " (state not saved: %s)" % e
    return line
