"""When a board checks for updates (docs/ota.md 7.5): the decision main.py makes after its boot work,
then otaclient.poll() only when a check is due.

Due: at a cold boot (power-on or reset; not a wake from deep sleep), when the board never had an
answered check, or when janua.json `ota.check_s` (default 21600 s = 6 h) has passed since the last
answered one (`checked`, server time, in ota_client.json), and as soon as the outcome of an update
(confirmed, rolled back) is owed to the verifier. So a battery board that deep-sleeps and
wakes to authenticate checks in one of those wakes once the interval is over: never a wake-up of
its own. A wake whose clock the server did not set is not due (its authentication failed; the
network is likely down). Off without trusted release keys in ota.json, with check_s 0, and while a
version is in trial (its outcome is not known yet).

This module is small on purpose: it runs on every boot, and imports the OTA client (ota.py,
manifest.py, httpreq.py: tens of KB of heap on an ESP32) only when a check is due. It does not
sleep, loop or reset.
"""

from micropython import const
from janua import JanuaError
from janua.otastore import read_json, write_json

PENDING = "ota_client.json"   # otaclient.PENDING: the owed outcome, and "checked"
_PTR = "ota_ptr.json"         # ota.PTR
_CONFIG = "ota.json"          # ota.CONFIG
_CHECK_S = const(21600)


def _now(clock, store):
    # Unix seconds this boot can trust (the server set the clock, here or in app.run()), else None.
    if clock is not None and clock.source == "server":
        return clock.now()
    st = store.load_state()
    at = st.get("at")
    return at if st.get("clock_source") == "server" and isinstance(at, int) else None


def _owed(fs, root, version, ptr):
    # An outcome the verifier should hear now (otaclient.send_outcome decides the same way): the
    # owed version confirmed in the pointer, or rolled back (an event names it).
    if not version or not isinstance(ptr, dict):
        return False
    if ptr.get("version") == version:
        return ptr.get("state") == "confirmed"
    reps = read_json(fs, root + "ota_report.json")   # ota.REPORT
    for e in reps if isinstance(reps, list) else ():
        if isinstance(e, dict) and e.get("event") == "rolled_back" and e.get("version") == version:
            return True
    return False


def due(store, fs, root="", clock=None, cold=True):
    """(True, None) when a check is due, else (False, why: None when checks are off)."""
    try:
        every = (store.load_config().get("ota") or {}).get("check_s", _CHECK_S)
    except (JanuaError, AttributeError):
        return False, None
    cfg = read_json(fs, root + _CONFIG)
    keys = cfg.get("keys") if isinstance(cfg, dict) else None
    if not isinstance(every, int) or isinstance(every, bool) or every <= 0 or not keys:
        return False, None
    ptr = read_json(fs, root + _PTR)
    if isinstance(ptr, dict) and ptr.get("state") == "trial":
        return False, "janua ota: version in trial: no check"
    doc = read_json(fs, root + PENDING)
    doc = doc if isinstance(doc, dict) else {}
    last = doc.get("checked")
    if cold or not isinstance(last, int) or _owed(fs, root, doc.get("version"), ptr):
        return True, None
    now = _now(clock, store)
    if now is None:
        return False, "janua ota: clock not set: no check"
    if now - last < every:
        return False, "janua ota: next check in %d s" % (last + every - now)
    return True, None


def scheduled(store=None, clock=None, slots=None, cold=True, fs=None, root=""):
    """Poll when due (otaclient.poll()'s (result, line)), else ("off", None) or ("skipped", why).
    An answered check (result "none" or "installed") records its server time as `checked`."""
    from janua.store import Store
    store = store or Store()
    if slots is not None:
        fs, root = slots.fs, slots.root
    if fs is None:
        from janua.otastore import FlashFS
        fs = FlashFS()
    ok, why = due(store, fs, root, clock, cold)
    if not ok:
        return ("off" if why is None else "skipped"), why
    if clock is None:
        from janua.clock import Clock
        clock = Clock()
    from janua.otaclient import poll
    result, line = poll(store, clock, slots)
    if result != "failed" and clock.source == "server":
        doc = read_json(fs, root + PENDING)
        doc = doc if isinstance(doc, dict) else {}
        doc["checked"] = clock.now()
        try:
            write_json(fs, root + PENDING, doc)
        except JanuaError:
            pass
    return result, line
