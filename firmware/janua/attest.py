"""Board attestation evidence (docs/attestation.md section 2.2): measure what the board runs and tag it.

    from janua.attest import Attester
    ev = Attester(cfg).evidence(nonce)    # bytes to send; nonce: the verifier's 16-byte challenge

Two layers. The codec (`encode` and the `*_record` builders) turns given records into evidence: the
vectors in docs/vectors/attest.json are reproduced from it. `Attester.evidence()` gathers the records
itself: MicroPython version and build, the hal's board id, the active application slot (ota_ptr.json)
and its files, the installed janua modules, the boot record, the hal's claimed hardware security state.
Each file is hashed by streaming it through the Attester's one 512-byte buffer; the evidence is one
bytearray of its exact size, laid out by a first walk over the file names (no hashing) and filled by a
second. If a file cannot be read, or the flash changes between the two walks, AttestError is raised
and no evidence exists: nothing partial is ever returned.

Not measured, ever: credential files (_SECRET), the slot's .manifest.json and any name starting with
".". It does not send anything (attestnet.py does), does not write to flash and does not appraise.
"""

import gc
import os
import sys
from hashlib import sha256
from micropython import const
from janua import JanuaError

_VERSION = const(1)
_HEADER = const(31)           # version 1, device id 8, nonce 16, device time 4, records length 2
_TAG = const(16)
_MAX_EVIDENCE = const(8192)
_MAX_FILES = const(64)
_MAX_MODULES = const(96)
_MAX_NAME = const(64)
_BUF = const(512)
_DIR = const(0x4000)

_MP_VERSION = const(1)
_MP_BUILD = const(2)
_BOARD = const(3)
_APP = const(4)
_APP_FILE = const(5)
_MODULE = const(6)
_BOOT = const(7)
_HW = const(8)

# Never measured or sent, wherever they are: the config with the master secret and the auth state
# (store.py CONFIG, STATE), the MQTT certificate, key and CA (mqtt.py), the device token (token.py
# FILE), the offline chain and its used list (chain.py CHAIN, USED); their .tmp copies as well.
_SECRET = ("janua.json", "janua_state.json", "janua_cert.der", "janua_key.der", "janua_ca.der",
           "token.json", "chain.bin", "chain.used")


class AttestError(JanuaError):
    """Evidence could not be measured or sent (the message says which file or answer); nothing partial."""


def record(rtype, value):
    # callers keep values within 255 bytes (names are checked, text cut); bytes() refuses more
    return bytes((rtype, len(value))) + value


def text_record(rtype, s, cap=255):
    # UTF-8, cut to `cap` bytes on a character boundary (a build string could be long).
    b = s.encode()
    if len(b) > cap:
        n = cap
        while n and b[n] & 0xC0 == 0x80:
            n -= 1
        b = b[:n]
    return record(rtype, b)


def app_record(slot, trial, version=""):
    v = (version or "").encode()
    return record(_APP, bytes((slot, 1 if trial else 0)) + (v if len(v) <= 32 else b""))


def file_record(rtype, name, size, digest):
    return record(rtype, size.to_bytes(4, "big") + digest + name.encode())


def boot_record(count, cause, uptime):
    return record(_BOOT, count.to_bytes(4, "big") + bytes((cause,)) + uptime.to_bytes(4, "big"))


def hw_record(flags, raw=b""):
    return record(_HW, flags.to_bytes(2, "big") + raw[:32])


def _header(out, device_id, nonce, now, n):
    if len(device_id) != 8 or len(nonce) != 16:
        raise AttestError("bad device id or nonce")
    out[0] = _VERSION
    out[1:9] = device_id
    out[9:25] = nonce
    out[25:29] = (int(now) & 0xFFFFFFFF).to_bytes(4, "big")
    out[29:31] = n.to_bytes(2, "big")


def _put(out, o, recs):
    for r in recs:
        out[o:o + len(r)] = r
        o += len(r)
    return o


def _seal(mac, out, n):
    # The tag: HMAC-SHA256(K_attest, bytes[0:31+L])[0:16], written after the records.
    out[_HEADER + n:] = mac.digest(memoryview(out)[:_HEADER + n])[:_TAG]
    return out


def _cap(n):
    if _HEADER + n + _TAG > _MAX_EVIDENCE:
        raise AttestError("evidence of %d bytes is over 8192" % (_HEADER + n + _TAG))


def encode(mac, device_id, nonce, now, records):
    """Evidence (a bytearray) of the given records, in their order; `mac` is HMAC(K_attest)."""
    n = 0
    for r in records:
        n += len(r)
    _cap(n)
    out = bytearray(_HEADER + n + _TAG)
    _header(out, device_id, nonce, now, n)
    _put(out, _HEADER, records)
    return _seal(mac, out, n)


def _walk(fs, d, rel, fn):
    # fn(type, path on flash, path in the slot) for every file below d, dot names skipped (so the
    # slot's .manifest.json) and credential files; plain recursion: no generator frames on the heap
    for e in fs.ilistdir(d):
        name = e[0]
        if name[0] == "." or name in _SECRET or (name.endswith(".tmp") and name[:-4] in _SECRET):
            continue
        if e[1] == _DIR:
            _walk(fs, d + "/" + name, rel + name + "/", fn)
        else:
            fn(_APP_FILE, d + "/" + name, rel + name)


class Flash:
    """The board's filesystem as measured: open() and an ilistdir() that iterates (one entry on the
    heap at a time, where otastore.FlashFS makes a list)."""

    def open(self, path, mode):
        return open(path, mode)

    def ilistdir(self, d):
        return os.ilistdir(d)


def _json(fs, path):
    # A small JSON file (ota_ptr.json, janua_state.json) or None; like otastore.read_json, the .tmp
    # copy when a rename was cut short. Parsed from the stream after a size check.
    import json
    for p in (path, path + ".tmp"):
        try:
            f = fs.open(p, "r")
        except OSError:
            continue
        try:
            if f.seek(0, 2) <= 4096:
                f.seek(0)
                return json.load(f)
        except ValueError:
            pass
        finally:
            f.close()
    return None


def _hal():
    try:
        import janua_hal
        return janua_hal
    except ImportError:
        return None


class Attester:
    """One device's evidence maker: K_attest derived once (its HMAC pads cached), one read buffer."""

    def __init__(self, cfg, fs=None, root="", hal=False, pkg=None):
        from binascii import unhexlify
        from janua.hkdf import derive
        from janua.mac import HMAC
        self.mac = HMAC(derive(unhexlify(cfg["master_secret"]), "attest"))
        self.device_id = unhexlify(cfg["device_id"])
        self.fs = fs or Flash()
        self.root = root
        self.hal = _hal() if hal is False else hal
        self.pkg = pkg            # the janua package directory; None: where janua was imported from
        self.buf = bytearray(_BUF)

    # -- what is measured -----------------------------------------------------------------------

    def _pkg(self):
        if self.pkg is not None:
            return self.pkg or None
        import janua
        f = getattr(janua, "__file__", "")
        d = f[:f.rfind("/")] if "/" in f else ""
        # a package frozen into the firmware is not on the filesystem: no module records
        return None if not f or d.startswith(".frozen") else d

    def _app(self):
        # (slot number, in trial, version, slot directory or None for the factory application)
        ptr = _json(self.fs, self.root + "ota_ptr.json")
        a = ptr.get("active") if isinstance(ptr, dict) else None
        if a not in ("a", "b"):
            return 0, False, "", None
        v = ptr.get("version")
        return (1 if a == "a" else 2), ptr.get("state") == "trial", v if isinstance(v, str) else "", \
            self.root + "app_" + a

    def _all(self, slot_dir, fn):
        # fn(record type, path on flash, name in the record) for every measured file, in a stable order
        fs = self.fs
        if slot_dir is None:
            for name in ("main.py", "boot.py"):
                p = self.root + name
                try:
                    fs.open(p, "rb").close()
                except OSError:
                    continue
                fn(_APP_FILE, p, name)
        else:
            _walk(fs, slot_dir, "", fn)
        d = self._pkg()
        if d is not None:
            for e in fs.ilistdir(d or "."):
                n = e[0]
                if e[1] != _DIR and n[0] != "." and (n.endswith(".py") or n.endswith(".mpy")):
                    fn(_MODULE, (d + "/" + n) if d else n, n)

    def _size(self, rtype, path, name):
        # first walk: count and size a record
        k = len(name.encode())
        if not 0 < k <= _MAX_NAME:
            raise AttestError("%s: a measured name is 1 to 64 bytes" % name)
        self._k[rtype - _APP_FILE] += 1
        self._n += 38 + k

    def _fill(self, rtype, path, name):
        # second walk: hash a file into its record
        size, digest = self._hash(path)
        r = file_record(rtype, name, size, digest)
        o = self._o
        if o + len(r) > self._e:
            raise AttestError("the flash changed during measurement")
        self._b[o:o + len(r)] = r
        self._o = o + len(r)

    def _fix(self):
        # The records that need no file: versions, board, app, boot, hardware state.
        hal = self.hal
        v = sys.implementation.version
        recs = [text_record(_MP_VERSION, "%d.%d.%d" % (v[0], v[1], v[2])),
                text_record(_MP_BUILD, os.uname().version if hasattr(os, "uname") else sys.version)]
        if hal is not None:
            recs.append(text_record(_BOARD, hal.board()))
        slot, trial, version, d = self._app()
        recs.append(app_record(slot, trial, version))
        tail = []
        st = _json(self.fs, self.root + "janua_state.json")
        count = st.get("boots", 0) if isinstance(st, dict) else 0
        f = getattr(hal, "reset_code", None)
        cause = f() if f else 0
        f = getattr(hal, "uptime_s", None)
        up = f() if f else 0
        tail.append(boot_record(count if isinstance(count, int) else 0, cause, up))
        f = getattr(hal, "security_state", None)
        hw = f() if f else None
        if hw is not None:
            tail.append(hw_record(hw[0], hw[1]))
        return recs, tail, d

    def _hash(self, path):
        # (size, SHA-256) of one file through the one buffer
        buf = self.buf
        h = sha256()
        size = 0
        try:
            f = self.fs.open(path, "rb")
        except OSError as e:
            raise AttestError("cannot open %s: %s" % (path, e))
        try:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                h.update(buf if n == _BUF else memoryview(buf)[:n])
                size += n
        except OSError as e:
            raise AttestError("cannot read %s: %s" % (path, e))
        finally:
            f.close()
        return size, h.digest()

    # -- the evidence ---------------------------------------------------------------------------

    def evidence(self, nonce, now=None):
        """The tagged evidence (a bytearray) answering `nonce`; raises AttestError, never partial."""
        if now is None:
            from time import time as now
            now = now()
        try:
            head, tail, slot_dir = self._fix()
            # first walk: names only, to size the one evidence buffer and check the caps
            self._n, self._k = 0, [0, 0]
            self._all(slot_dir, self._size)
            files, mods = self._k
            if files > _MAX_FILES or mods > _MAX_MODULES:
                raise AttestError("%d files, %d modules: at most 64 and 96" % (files, mods))
            n = self._n
            for r in head + tail:
                n += len(r)
            _cap(n)
            # the walk's garbage goes first, so the one buffer is not squeezed between its pieces
            gc.collect()
            out = self._b = bytearray(_HEADER + n + _TAG)
            _header(out, self.device_id, nonce, now, n)
            self._o = _put(out, _HEADER, head)
            head = None
            # second walk: hash each file into its record
            self._e = end = _HEADER + n - sum(len(r) for r in tail)
            self._all(slot_dir, self._fill)
            o = self._o
            if o != end:
                raise AttestError("the flash changed during measurement")
        except OSError as e:      # a directory that cannot be listed
            raise AttestError("measurement failed: %s" % e)
        finally:
            self._b = None      # the Attester keeps no evidence
        _put(out, o, tail)
        return _seal(self.mac, out, n)
