"""Serial-console diagnostics: `report()` prints "key: value" lines about this device.

It reads the store and the clock and prints what it finds, and what is missing when the board is
not provisioned. It never prints the master secret or any derived key; it changes nothing.
"""

import gc
import sys
import janua
from janua import JanuaError
from janua.store import Store


def lines(store=None, clock=None):
    """The report as (key, value) pairs; report() prints them."""
    store = store or Store()
    out = []
    try:
        try:
            cfg = store.load_config()
        except JanuaError as e:
            from janua.claim import check_image     # a factory claim image? (docs/claims_board.md)
            try:
                cfg = store.load_config(check_image)
            except JanuaError as e2:
                raise e2 if str(e2).startswith("claim image") else e
        if "claim" in cfg:              # a factory claim image: never its key
            out.append(("device_id", "unclaimed (batch %s)" % cfg["claim"]["batch"]))
            out.append(("serial", cfg["claim"]["serial"]))
            cfg = dict(cfg, device_id=None)
        else:
            out.append(("device_id", cfg["device_id"]))
        out.append(("tenant", cfg.get("tenant", "?")))
        out.append(("server", "%s udp=%s http=%s" % (
            cfg["server"]["host"], cfg["server"].get("udp_port", 5685),
            cfg["server"].get("http_port", 8080))))
        eps = cfg.get("endpoints")
        if eps:
            out.append(("endpoints", " ".join("%d:%s:%s:%s" % (i, e["host"], e.get("udp_port", 5685),
                                                             e.get("http_port", 8080)) for i, e in enumerate(eps))))
        out.append(("transport", cfg.get("transport", "auto")))
        out.append(("credentials", "claim key only" if cfg["device_id"] is None else "yes"))
    except JanuaError as e:
        out.append(("credentials", "no (%s)" % e))
    out.append(("janua", janua.__version__))
    v = sys.implementation.version
    out.append(("micropython", "%d.%d.%d" % (v[0], v[1], v[2])))
    try:
        import janua_hal
        out.append(("board", janua_hal.board()))
    except ImportError:
        out.append(("board", "unknown (janua_hal missing)"))
    if clock is not None:
        out.append(("clock", "%d source=%s set_at=%s" % (clock.now(), clock.source, clock.set_at)))
    else:
        out.append(("clock", "not started (source=none)"))
    gc.collect()
    out.append(("mem_free", gc.mem_free()))
    st = store.load_state()
    if st:
        out.append(("last_auth", "%s at %s via %s" % (
            st.get("result", "?"), st.get("at", "?"), st.get("transport", "?"))))
        ep = st.get("endpoint")
        if ep:                          # [index, host, tls] of the endpoint that answered the last run
            out.append(("endpoint", "%s %s%s" % (ep[0], ep[1], (" (backup since %s)" % st["failover_at"])
                                                 if "failover_at" in st else "")))
    else:
        out.append(("last_auth", "none recorded"))
    out.extend(_tokens(store, clock))
    return out


def _tokens(store, clock):
    # expiry and chain status only: never a token's bytes
    from janua.store import read_json
    try:
        t = read_json(store.fs, store.path("token.json"))
        tok = "exp=%s refresh_at=%s" % (t["exp"], t["refresh_at"]) if isinstance(t, dict) else "none"
    except (JanuaError, KeyError) as e:
        tok = "unreadable (%s)" % e
    from janua.chain import Chain
    try:
        n, nbf, high = Chain(b"", store.fs, store.root).status(clock.now() if clock else None)
        ch = "%d unused next_nbf=%s high=%d" % (n, nbf, high) if high >= 0 else "none"
    except (JanuaError, OSError) as e:
        ch = "unreadable (%s)" % e
    return [("token", tok), ("chain", ch)]


def report(store=None, clock=None):
    for k, v in lines(store, clock):
        print("%s: %s" % (k, v))
