"""Fetching updates from the verifier (docs/ota.md section 7.4): check, download, install, report.

    from janua import otaclient
    result, line = otaclient.poll()      # after the app has booted (and confirmed itself)
    if result == "installed":
        janua_hal.reset()                  # boot the new version in trial

`poll()` first sends the outcome of the last update (the "confirmed" or "rolled_back" event that
ota.py/otaboot.py recorded), then asks POST /v1/ota/check what to run. Both calls carry a fresh
binary auth request (binauth.Client; the server time of an authenticated reply sets the clock and
TIME_SYNC/REPLAY are retried), so a recorded call cannot be replayed. An offered update is handed
to AppSlots.install: the manifest and signature (small, capped) are fetched first and verified
there; only then is each file streamed from its HTTP response straight into the inactive slot
through install's one 4 KiB buffer, hashed on the way (the slot is the staging area: no second
copy on flash). Nothing here trusts the verifier's JSON for integrity: the signed manifest decides.

HTTP goes through janua.httpreq (one request per connection, Content-Length bodies only, no TLS,
no redirects). It does not reset the board and does not run in the background; when to poll is
janua.otacheck's decision (main.py calls it after every boot).
"""

import gc
from binascii import hexlify
from micropython import const
from janua import JanuaError, OTAError, TransportError, note_error
from janua.ota import AppSlots, read_json, write_json
from janua.manifest import MAX_MANIFEST, MAX_SIG
from janua.httpreq import request
from janua.devcall import DeviceCaller

PENDING = "ota_client.json"   # {"release_id", "version"}: the update whose outcome is owed (written before the switch)
_REASON = const(120)


class OTAClient(DeviceCaller):
    """One device talking to its verifier about updates (cfg = janua.json's config). Its calls are
    DeviceCaller.call (a refusal raises OTAError); `attest` holds the challenge the last check
    answer carried (docs/attestation.md 2.3), or None."""

    def __init__(self, cfg, clock, last_sent=0, slots=None, timeout=10.0, buf=None):
        DeviceCaller.__init__(self, cfg, clock, last_sent, timeout)
        # install()'s stream buffer: None lets install() take it once the signature is checked and
        # the Ed25519 code unloaded (the heap peak is then the larger of the two, not their sum)
        self.buf = buf
        self.slots = slots or AppSlots()
        self.attest = None
        self.health = None   # the verifier's verdict on the last check's health report
        self.policy = None   # why the last check offered nothing (docs/policies.md 3, OTA), or None

    def _refused(self, msg):
        return OTAError(msg)

    def _get(self, path, cap=None):
        status, body = request(self.host, self.port, "GET", path, None, self.timeout, tls=self.tls)
        if status != 200:
            body.close()
            raise OTAError("GET %s: http %d" % (path.split("?")[0], status))
        if cap is None:
            return body
        try:
            return bytes(body.read_all(cap))
        finally:
            body.close()

    def report(self, state, release_id=None, version=None, reason=None):
        doc = {"state": state}
        if release_id:
            doc["release_id"] = release_id
        if version:
            doc["version"] = version
        if reason:
            doc["reason"] = str(reason)[:_REASON]
        return self.call("/v1/ota/report", doc)

    def check(self, report=None):
        """The update the verifier offers this device (a dict), or None. A health `report` (bytes) rides
        along (docs/health.md 2.4); the verifier's verdict on it is then in .health ("ok" or a reason)."""
        ptr = self.slots.pointer()
        doc = {"kind": ptr.get("kind", "app"), "version": ptr.get("version"),   # kind: otafw.FirmwareSlots
               "counter": self.slots.counter.read()}
        if report:
            doc["health"] = hexlify(report).decode()
        out = self.call("/v1/ota/check", doc)
        self.health = out.get("health")
        ch = out.get("attest")
        self.attest = ch if isinstance(ch, dict) else None
        pol = out.get("policy")
        self.policy = pol if isinstance(pol, dict) else None
        up = out.get("update")
        return up if isinstance(up, dict) else None

    def send_outcome(self):
        """Report how the last installed update ended (confirmed / rolled_back); the event it sent,
        or None (nothing owed, or the release is still in trial).

        The pointer decides, not the event log alone: the release noted in PENDING (written
        before the switch) is confirmed when the pointer runs it confirmed, rolled back when the
        pointer is elsewhere and a rolled_back event names it (rollback() records the event before
        it switches back), and still owed otherwise (in trial, or a cut came before the switch)."""
        fs = self.slots.fs
        pending = read_json(fs, self.slots.p(PENDING))
        if not isinstance(pending, dict) or not pending.get("version"):
            return None
        v = pending["version"]
        ptr = self.slots.pointer()
        event = reason = None
        if ptr.get("version") == v:
            if ptr.get("state") == "confirmed":
                event = "confirmed"
        else:
            for e in self.slots.reports():
                if e.get("event") == "rolled_back" and e.get("version") == v:
                    event, reason = "rolled_back", e.get("reason")   # the latest one wins
        if event is None:
            return None
        self.report(event, pending.get("release_id"), v, reason)
        pending.pop("release_id", None)
        pending.pop("version", None)
        write_json(fs, self.slots.p(PENDING), pending)   # a cut before this only sends it twice
        return event

    def apply(self, up):
        """Download and install an offered update; report each step. Returns the manifest."""
        rid = up["release_id"]
        self.report("downloading", rid)
        try:
            m = self._get(up["manifest_url"], MAX_MANIFEST)
            sig = self._get(up["sig_url"], MAX_SIG)
            files = up["files_url"]

            def open_src(path):
                # called by install() only after the signature verified, once per file
                try:
                    return self._get(files.replace("{path}", path))
                except TransportError as e:
                    raise OTAError(str(e))
            def owe(manifest):
                # before the pointer switch: from the rename on, this release's outcome is owed
                doc = read_json(self.slots.fs, self.slots.p(PENDING))
                doc = doc if isinstance(doc, dict) else {}
                doc["release_id"], doc["version"] = rid, manifest["version"]
                write_json(self.slots.fs, self.slots.p(PENDING), doc)
            gc.collect()   # Ed25519 (pure Python) needs the heap the HTTP and JSON work left behind
            manifest = self.slots.install(m, sig, open_src, buf=self.buf, before_switch=owe)
        except (JanuaError, OSError) as e:
            self.report("failed", rid, reason=e)
            raise OTAError(str(e))
        self.report("installed", rid)
        return manifest


def _unload(*names):
    import sys
    import janua
    for n in names:
        sys.modules.pop(n, None)
        try:
            delattr(janua, n[6:])
        except AttributeError:
            pass
    gc.collect()


def _no_update(pol):
    # poll()'s line when the check offered nothing: the device's update policy may be the reason
    # (docs/policies.md 3): "deferred until <unix time the window opens> (<reason>)" or
    # "no update (<reason>)". Only a line for the console: nothing here acts on it.
    if pol is None:
        return "janua ota: up to date"
    why = pol.get("reason")
    why = " (%s)" % why[:_REASON] if isinstance(why, str) else ""
    until = pol.get("deferred_until")
    if pol.get("decision") == "deferred" and isinstance(until, int):
        return "janua ota: deferred until %d%s" % (until, why)
    return "janua ota: no update%s" % why


def _report(cfg, state, clock):
    # a health report when one is due and no other path carried it (docs/health.md 2.4), else None
    try:
        import janua
        from janua import health
        if health.due(cfg, state, clock.now(), not getattr(janua, "health_sent", False)):
            try:
                import janua_hal as hal
            except ImportError:
                hal = None
            return health.report(hal, state.get("boots"))
    except Exception as e:  # never a reason to skip the update check
        note_error(e)
    return None


def poll(store=None, clock=None, slots=None):
    """Send the last outcome, check, install: ("none"|"installed"|"failed", line). Never raises for
    the network or a refused update (main.py must not crash into a reboot loop); persists the
    binary-auth timestamp in the state file like app.run()."""
    gc.collect()
    from janua.store import Store
    from janua.clock import Clock
    store = store or Store()
    try:
        cfg = store.load_config()
    except JanuaError as e:
        return "failed", "janua ota: not provisioned: %s" % e
    state = store.load_state()
    c = OTAClient(cfg, clock or Clock(), state.get("last_sent", 0), slots)

    def persist(last_sent):
        state["last_sent"] = last_sent
        store.save_state(state)
    c.persist = persist
    try:
        c.send_outcome()
        up = c.check(_report(cfg, state, c.clock))
        if c.health == "ok":
            state["health_at"] = c.clock.now()
            import janua
            janua.health_sent = True
        if c.attest is not None:
            # the verifier holds a challenge for this board: answer it now, before an update
            # changes what runs (docs/attestation.md 2.3); a failure here never stops the update
            from janua.attestnet import after_check
            line_attest = after_check(c, cfg, c.attest)
            after_check = None
            _unload("janua.attestnet", "janua.attest")   # their heap goes back before an install
        else:
            line_attest = ""
        if up is None:
            result, line = "none", _no_update(c.policy)
        else:
            m = c.apply(up)
            result, line = "installed", "janua ota: installed %s (trial): reset to run it" % m["version"]
        line += line_attest
    except (JanuaError, OSError, MemoryError) as e:
        result, line = "failed", "janua ota: %s: %s" % (type(e).__name__, e)
    state["last_sent"] = c.last_sent
    try:
        store.save_state(state)
    except JanuaError:
        pass
    return result, line

