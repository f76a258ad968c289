"""Device tokens and the offline chain in the boot flow (app.run calls `run` when janua.json has
"tokens": {"chain": true, "edge": "http://edge:8080"}).

Online (binary auth reached the verifier): refresh or obtain the device token when it is due, then
sync the chain (report used tokens, store a top-up) and remember the verifier's drift allowance.
Offline (the verifier did not answer) and an edge is configured: authenticate to the edge with
the chain token for now. One line for the console; never raises a JanuaError or OSError. It does
not retry, sleep or run in the background.
"""

from binascii import unhexlify
from janua import JanuaError


def run(cfg, store, clock, online):
    opts = cfg.get("tokens")
    if not isinstance(opts, dict):
        opts = {}
    from janua.chain import Chain
    ch = Chain(unhexlify(cfg["device_id"]), store.fs, store.root)
    state = store.load_state()
    drift = state.get("drift_s", 300)
    try:
        if not online:
            url = opts.get("edge")
            if not url:
                return ""
            out = ch.present(url, clock.now(), drift)
            return " offline: ok index=%s next_nbf=%s" % (out.get("index"), out.get("next_nbf"))
        from janua.token import TokenStore
        ts = TokenStore(cfg, clock, state.get("last_sent", 0), store.fs, store.root)
        try:
            ts.ensure(clock.now())
        finally:
            state["last_sent"] = ts.last_sent
        line = " token: exp=%d" % ts.exp()
        if opts.get("chain", True):
            r = ch.sync(ts, clock.now(), drift)
            d = r["config"].get("drift_s")
            if isinstance(d, int) and 0 <= d <= 3600:
                state["drift_s"] = d
            unused, nxt, _ = ch.status(clock.now())
            line += " chain: %d unused (+%d) next_nbf=%s" % (unused, r["added"], nxt)
        return line
    except (JanuaError, OSError) as e:
        return " tokens: %s: %s" % (type(e).__name__, e)
    finally:
        try:
            store.save_state(state)
        except JanuaError:
            pass
