"""Application updates on the board's filesystem: A/B slots, a pointer, trial boots, anti-rollback.

Flash layout (docs/ota.md):
    app_a/, app_b/     the two application slots (each a tree of files, plus .manifest.json)
    ota_ptr.json       which slot runs, its state (trial | confirmed), boots counted, previous
    ota_ctr.0, .1      the anti-rollback counter: two alternating CRC-checked records
    ota_report.json    the last events (installed, confirmed, rolled_back, rejected) to send later
    ota.json           provisioned config: {"keys": {kid: pub hex}, "hw_version", "trial_boots", "trial_seconds"}

`install()` verifies the manifest (signature, fields, compatibility, counter), streams every file
into the inactive slot through one preallocated buffer while hashing, reads the slot back to check
it, syncs, then switches by renaming a new pointer over the old one: a power cut leaves the old
pointer (old app) or the new one (complete new app), never a mix. The new version boots in trial;
`confirm()` makes it current and only then commits its counter; otaboot.py rolls back an
unconfirmed version after its allowed boots. No network I/O here: the caller supplies the source
of each file (`open_src(path)`, e.g. the staging area a host tool filled, or an HTTP stream).
"""

import gc
from micropython import const
from janua import OTAError, StoreError, TransportError
from janua.otastore import FlashFS, Counter, read_json, write_json, crc32, wipe, size  # noqa: F401 (re-exported)
from janua.manifest import verify_manifest, check_compat, copy_verified, MAX_MANIFEST, MAX_SIG

PTR = "ota_ptr.json"
REPORT = "ota_report.json"
CONFIG = "ota.json"
STAGE = "ota_stage"
_MAX_REPORTS = const(8)
_BUF = const(4096)
_TRIAL_S = const(3600)  # default trial time limit (ota.json trial_seconds, manifest rollback.trial_seconds)
_CHECKED = ("compat", "rollout", "created", "name")


def device_info(cfg):
    import sys
    try:
        import janua_hal
        board = janua_hal.board()
    except ImportError:
        board = sys.platform
    return {"board": board, "hw": cfg.get("hw_version", 0), "mp": sys.implementation.version[:3]}


class AppSlots:
    """The A/B application slots of one board (root = flash root; fs injectable)."""

    def __init__(self, fs=None, root="", now=None):
        self.fs = fs or FlashFS()
        self.root = root
        self.now = now  # callable -> seconds, for report timestamps; None: no timestamps
        self.counter = Counter(self.fs, root)

    def p(self, name):
        return self.root + name

    def config(self):
        return read_json(self.fs, self.p(CONFIG), {}) or {}

    def keys(self, cfg=None):
        from binascii import unhexlify
        out = {}
        for kid, pub in ((cfg if cfg is not None else self.config()).get("keys") or {}).items():
            if isinstance(pub, str) and len(pub) == 64:
                out[kid] = unhexlify(pub)
        return out

    def pointer(self):
        ptr = read_json(self.fs, self.p(PTR))
        if not isinstance(ptr, dict) or ptr.get("active") not in ("a", "b", ""):
            return {"active": "", "state": "confirmed"}  # no update yet: the factory app runs
        return ptr

    def set_pointer(self, ptr):
        write_json(self.fs, self.p(PTR), ptr)

    def report(self, event, **kw):
        """Append an event for the verifier (kept: the last few); never raises."""
        kw["event"] = event
        if self.now is not None:
            kw["at"] = self.now()
        reps = read_json(self.fs, self.p(REPORT), [])
        if not isinstance(reps, list):
            reps = []
        reps = (reps + [kw])[-_MAX_REPORTS:]
        try:
            write_json(self.fs, self.p(REPORT), reps)
        except StoreError:
            pass

    def reports(self):
        return read_json(self.fs, self.p(REPORT), []) or []

    # -- install ----------------------------------------------------------------------------

    def install(self, manifest_bytes, sig_bytes, open_src, device=None, probe=None, buf=None, before_switch=None):
        """Verify and stage a release, then switch to it in trial. Returns the manifest.

        `before_switch(manifest)` runs once the slot is complete and verified, just before the
        pointer rename (otaclient records there which release's outcome it owes the verifier).
        Rejections raise OTAError with the reason (also recorded as a "rejected" report); the
        running slot and the pointer are untouched then."""
        try:
            return self._install(manifest_bytes, sig_bytes, open_src, device, probe, buf, before_switch)
        except OTAError as e:
            self.report("rejected", reason=str(e))
            raise

    def _install(self, manifest_bytes, sig_bytes, open_src, device, probe, buf, before_switch):
        ptr = self.pointer()
        if ptr.get("state") == "trial":
            raise OTAError("version %s is in trial: confirm it or let it roll back first" % ptr.get("version"))
        ptr = None  # heap: while Ed25519 runs, hold only what it needs (read again below)
        m = verify_manifest(manifest_bytes, sig_bytes, self.keys())
        if m.get("kind", "app") != "app":
            raise OTAError("not an application release (kind %s)" % m.get("kind"))
        cfg = self.config()
        check_compat(m, device or device_info(cfg), probe)
        boots = cfg.get("trial_boots", 3)
        secs = cfg.get("trial_seconds", _TRIAL_S)
        cfg = None
        for k in _CHECKED:  # checked and no longer needed: their heap goes back before the download
            m.pop(k, None)
        ptr = self.pointer()
        stored = self.counter.read()
        if m["counter"] < stored:
            raise OTAError("downgrade: security counter %d < %d" % (m["counter"], stored))
        target = "b" if ptr["active"] == "a" else "a"
        d = self.p("app_" + target)
        self._wipe(d)
        # The one streaming buffer, taken only now: the signature check (and its modules, unloaded
        # by verify_manifest) is over, so the two never hold heap at the same time. A caller that
        # fears fragmentation passes its own, allocated early.
        gc.collect()
        buf = buf or bytearray(_BUF)
        try:
            self.fs.mkdir(d)
            for f in m["files"]:
                self._stage(d, f, open_src, buf)
            w = self.fs.open(d + "/.manifest.json", "wb")
            try:
                w.write(manifest_bytes)
            finally:
                w.close()
            self.fs.sync()
            for f in m["files"]:  # read back what landed on flash
                self._cur = f["path"]
                r = self.fs.open(d + "/" + f["path"], "rb")
                try:
                    copy_verified(r, None, f["size"], f["sha256"], buf)
                finally:
                    r.close()
        except (OTAError, TransportError) as e:   # TransportError: a download ended early
            self._wipe(d)
            raise OTAError("%s: %s" % (getattr(self, "_cur", "?"), e))
        except OSError as e:
            self._wipe(d)
            raise OTAError("staging failed: %s" % e)
        rb = m.get("rollback", {})
        trial = rb.get("allowed", True)
        new = {"active": target, "state": "trial" if trial else "confirmed", "boots": 0,
               "max_boots": rb.get("trial_boots", boots), "max_seconds": rb.get("trial_seconds", secs),
               "version": m["version"], "counter": m["counter"], "entry": m.get("entry", "main"),
               "previous": ptr["active"], "prev_version": ptr.get("version"),
               "prev_entry": ptr.get("entry"), "prev_counter": ptr.get("counter", 0)}
        if before_switch is not None:
            before_switch(m)
        self.set_pointer(new)  # the switch
        if not trial:
            self.counter.write(max(stored, m["counter"]))
        self.report("installed", version=m["version"], trial=trial)
        return m

    def _stage(self, d, f, open_src, buf):
        path = f["path"]
        self._cur = path
        parts = path.split("/")
        for i in range(1, len(parts)):
            try:
                self.fs.mkdir(d + "/" + "/".join(parts[:i]))
            except OSError:
                pass
        src = open_src(path)
        try:
            w = self.fs.open(d + "/" + path, "wb")
            try:
                copy_verified(src, w.write, f["size"], f["sha256"], buf)
                w.flush()
            finally:
                w.close()
        finally:
            src.close()

    def _wipe(self, d):
        wipe(self.fs, d)

    # -- after the switch -------------------------------------------------------------------

    def confirm(self):
        """The running version is healthy: make it current and commit its counter. Idempotent."""
        ptr = self.pointer()
        if ptr.get("state") == "trial":
            # The event first, then the pointer: a cut between the two leaves the trial running
            # (its next boot confirms again) rather than a confirmed slot without its event.
            self.report("confirmed", version=ptr.get("version"), boots=ptr.get("boots"))
            ptr["state"] = "confirmed"
            self.set_pointer(ptr)
        c = ptr.get("counter", 0)
        if c > self.counter.read():
            self.counter.write(c)
        return ptr

    def note_failure(self, why):
        """Record why a trial boot failed (kept in the pointer until the rollback reports it)."""
        ptr = self.pointer()
        if ptr.get("state") == "trial":
            ptr["last_error"] = str(why)[:120]
            self.set_pointer(ptr)

    def rollback(self, reason):
        """Return to the previous slot now (trial only) and report why."""
        ptr = self.pointer()
        if ptr.get("state") != "trial":
            raise OTAError("nothing to roll back: the running version is confirmed")
        if ptr.get("last_error"):
            reason = "%s; last error: %s" % (reason, ptr["last_error"])
        # The event first: a cut before the switch back leaves the trial pointer, whose next boot
        # rolls back (and records it) again; never the old slot back without the event saying why.
        self.report("rolled_back", version=ptr.get("version"), to=ptr.get("prev_version"), reason=reason)
        self.set_pointer({"active": ptr.get("previous") or "", "state": "confirmed",
                          "version": ptr.get("prev_version"), "entry": ptr.get("prev_entry"),
                          "counter": ptr.get("prev_counter", 0)})

    def install_staged(self, device=None, probe=None):
        """Install the release a host tool copied into ota_stage/ (then remove it)."""
        st = self.p(STAGE)
        try:
            data = []
            for name, cap in (("manifest.json", MAX_MANIFEST), ("manifest.sig", MAX_SIG)):
                try:
                    f = self.fs.open(st + "/" + name, "rb")
                except OSError:
                    raise OTAError("no %s in %s" % (name, STAGE))
                try:
                    n = size(f)
                    if n > cap:
                        raise OTAError("%s over %d bytes" % (name, cap))
                    data.append(f.read(n))
                finally:
                    f.close()
            return self.install(data[0], data[1], lambda p: self.fs.open(st + "/files/" + p, "rb"),
                                device, probe)
        finally:
            self._wipe(st)


def confirm(fs=None):
    """Call from the application once it has booted and authenticated."""
    return AppSlots(fs).confirm()
