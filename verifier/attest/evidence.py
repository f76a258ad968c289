"""Board attestation evidence (docs/attestation.md section 2): the fixed binary layout, sans-IO.

`decode` parses the structure only (it needs the device id to find the key); `check_tag` then
verifies the 16-byte tag with the device's attestation key (HKDF label `attest`, docs/protocol.md
section 1). `encode` builds evidence the way a board does: the tests, the bench and the vectors use it.
Nothing here appraises: that is verifier.attest.core.
"""
import hashlib
import hmac
import struct

VERSION = 1
NONCE_LEN = 16
TAG_LEN = 16
HEADER_LEN = 31              # version 1, device id 8, nonce 16, device time 4, records length 2
MAX_EVIDENCE = 8192
MAX_FILES = 64               # an OTA manifest holds at most 64 files (docs/ota.md)
MAX_MODULES = 96

# record types (docs/attestation.md 2.2). 0x01..0x7f are defined by this version (an unknown one is
# malformed); 0x80..0xff are extensions, skipped by this verifier.
MP_VERSION, MP_BUILD, BOARD, APP, APP_FILE, FW_MODULE, BOOT, HW_SECURITY, FW_PACKAGE = range(1, 10)
SINGLE = frozenset((MP_VERSION, MP_BUILD, BOARD, APP, BOOT, HW_SECURITY, FW_PACKAGE))
TEXT_RECORDS = {MP_VERSION: "micropython", MP_BUILD: "build", BOARD: "board"}

SLOTS = {0: "factory", 1: "app_a", 2: "app_b"}
RESET_CAUSES = {0: "unknown", 1: "power_on", 2: "hard_reset", 3: "watchdog", 4: "deepsleep_wake",
                5: "soft_reset", 6: "brownout"}
HW_FLAGS = {0x0001: "secure_boot", 0x0002: "flash_encryption", 0x0004: "debug_disabled", 0x0008: "state_read"}


class EvidenceError(ValueError):
    """Evidence that does not parse; `reason` is a short stable name (docs/attestation.md 2.4)."""

    def __init__(self, reason, detail=""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class Evidence:
    """The parsed evidence; `signed` is the byte range the tag covers, `tag` the 16 bytes after it."""

    __slots__ = ("device_id", "nonce", "time", "micropython", "build", "board", "app", "files",
                 "modules", "package", "boot", "hw", "signed", "tag", "extensions")

    def to_json(self):
        """The measurements as the API shows them (no tag, no nonce)."""
        return {"device_time": self.time, "micropython": self.micropython, "build": self.build,
                "board": self.board, "app": self.app, "boot": self.boot, "hw_claimed": self.hw,
                "files": [{"path": p, "size": s, "sha256": h} for p, (s, h) in sorted(self.files.items())],
                "modules": [{"name": n, "size": s, "sha256": h} for n, (s, h) in sorted(self.modules.items())],
                "package": self.package}


def _text(value, what, lo=1, hi=255):
    if not lo <= len(value) <= hi:
        raise EvidenceError("malformed", f"{what} length {len(value)}")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise EvidenceError("malformed", f"{what} is not UTF-8") from None
    if any(ord(c) < 0x20 or ord(c) == 0x7f for c in text):
        raise EvidenceError("malformed", f"{what} has a control character")
    return text


def _digest_entry(value, what):
    if len(value) < 37:
        raise EvidenceError("malformed", f"{what} record of {len(value)} bytes")
    size = int.from_bytes(value[0:4], "big")
    return size, value[4:36].hex(), _text(value[36:], f"{what} name", 1, 64)


def decode(data):
    """Parse evidence bytes into an Evidence, or raise EvidenceError. Does not check the tag."""
    data = bytes(data)
    if len(data) > MAX_EVIDENCE:
        raise EvidenceError("too_large", f"{len(data)} bytes (at most {MAX_EVIDENCE})")
    if len(data) < HEADER_LEN + TAG_LEN:
        raise EvidenceError("malformed", f"{len(data)} bytes is shorter than a header and a tag")
    if data[0] != VERSION:
        raise EvidenceError("version", f"evidence version {data[0]} (this verifier reads {VERSION})")
    ev = Evidence()
    ev.device_id, ev.nonce = data[1:9], data[9:25]
    ev.time = int.from_bytes(data[25:29], "big")
    n = int.from_bytes(data[29:31], "big")
    if len(data) != HEADER_LEN + n + TAG_LEN:
        raise EvidenceError("malformed", f"records length {n} does not match {len(data)} bytes")
    ev.signed, ev.tag = data[:HEADER_LEN + n], data[HEADER_LEN + n:]
    ev.micropython = ev.build = ev.board = ev.app = ev.boot = ev.hw = ev.package = None
    ev.files, ev.modules, ev.extensions = {}, {}, 0
    seen = set()
    off, end = HEADER_LEN, HEADER_LEN + n
    while off < end:
        if end - off < 2:
            raise EvidenceError("malformed", "truncated record header")
        rtype, rlen = data[off], data[off + 1]
        value = data[off + 2:off + 2 + rlen]
        if len(value) != rlen:
            raise EvidenceError("malformed", f"record 0x{rtype:02x} runs past the records")
        off += 2 + rlen
        if rtype >= 0x80:
            ev.extensions += 1
            continue
        if rtype in SINGLE:
            if rtype in seen:
                raise EvidenceError("malformed", f"record 0x{rtype:02x} twice")
            seen.add(rtype)
        if rtype in TEXT_RECORDS:
            setattr(ev, TEXT_RECORDS[rtype], _text(value, TEXT_RECORDS[rtype]))
        elif rtype == APP:
            if len(value) < 2 or value[0] not in SLOTS or value[1] > 1:
                raise EvidenceError("malformed", "app record")
            ev.app = {"slot": SLOTS[value[0]], "trial": bool(value[1]),
                      "version": _text(value[2:], "app version", 0, 32) or None}
        elif rtype in (APP_FILE, FW_MODULE):
            size, digest, name = _digest_entry(value, "file" if rtype == APP_FILE else "module")
            table, cap = (ev.files, MAX_FILES) if rtype == APP_FILE else (ev.modules, MAX_MODULES)
            if name in table:
                raise EvidenceError("malformed", f"{name} listed twice")
            if len(table) >= cap:
                raise EvidenceError("malformed", f"more than {cap} entries")
            table[name] = (size, digest)
        elif rtype == FW_PACKAGE:
            if len(value) != 38:
                raise EvidenceError("malformed", "janua package record")
            ev.package = {"count": int.from_bytes(value[0:2], "big"), "size": int.from_bytes(value[2:6], "big"),
                          "sha256": value[6:38].hex()}
        elif rtype == BOOT:
            if len(value) != 9:
                raise EvidenceError("malformed", "boot record")
            ev.boot = {"boot_count": int.from_bytes(value[0:4], "big"),
                       "reset_cause": RESET_CAUSES.get(value[4], "unknown"),
                       "uptime_s": int.from_bytes(value[5:9], "big")}
        elif rtype == HW_SECURITY:
            if not 2 <= len(value) <= 34:
                raise EvidenceError("malformed", "hardware security record")
            flags = int.from_bytes(value[0:2], "big")
            ev.hw = {"flags": sorted(name for bit, name in HW_FLAGS.items() if flags & bit),
                     "raw": value[2:].hex()}
        else:
            raise EvidenceError("malformed", f"unknown record type 0x{rtype:02x}")
    return ev


def package_digest(modules):
    """The janua package digest a board sends as record 0x09 (docs/attestation.md 2.2), from a module list
    [(name, size, hex sha256)] (a model reference's): {"count", "size", "sha256"}, as Evidence.package.
    SHA-256 over name (UTF-8) || 0x00 || size (u32) || sha256 (32) of every module, in ascending byte
    order of the names. ValueError for a name listed twice, a bad digest or a size over 32 bits."""
    entries = sorted((name.encode(), size, bytes.fromhex(digest)) for name, size, digest in modules)
    h = hashlib.sha256()
    total = 0
    for i, (name, size, digest) in enumerate(entries):
        if i and entries[i - 1][0] == name:
            raise ValueError(f"module {name.decode()} listed twice")
        if len(digest) != 32 or not 0 <= size <= 0xFFFFFFFF or not name:
            raise ValueError(f"module {name.decode()}: bad size or sha256")
        h.update(name + b"\0" + struct.pack(">I", size) + digest)
        total += size
    if len(entries) > 0xFFFF or total > 0xFFFFFFFF:
        raise ValueError("a package of more than 65535 modules or 4 GiB")
    return {"count": len(entries), "size": total, "sha256": h.hexdigest()}


def check_tag(ev, key):
    """True iff the tag is HMAC-SHA256(K_attest, signed)[0:16], compared in constant time."""
    return hmac.compare_digest(hmac.new(key, ev.signed, hashlib.sha256).digest()[:TAG_LEN], ev.tag)


# -- building evidence (as a board does; tests, bench and vectors) ------------------------------

def record(rtype, value):
    if len(value) > 255:
        raise ValueError("a record value is at most 255 bytes")
    return bytes((rtype, len(value))) + value


def file_record(rtype, name, size, digest):
    return record(rtype, struct.pack(">I", size) + bytes.fromhex(digest) + name.encode())


def encode(key, device_id, nonce, device_time, *, micropython=None, build=None, board=None, app=None,
           files=(), modules=(), package=None, boot=None, hw=None, extra=b""):
    """Evidence bytes. `app` = (slot number, trial 0|1, version); files/modules = [(name, size, hex sha256)];
    package = {"count", "size", "sha256"} (package_digest's); boot = (boot_count, reset cause code,
    uptime_s); hw = (flags, raw bytes); `extra` is appended raw."""
    recs = b""
    for rtype, text in ((MP_VERSION, micropython), (MP_BUILD, build), (BOARD, board)):
        if text is not None:
            recs += record(rtype, text.encode())
    if app is not None:
        recs += record(APP, bytes((app[0], app[1])) + (app[2] or "").encode())
    for name, size, digest in files:
        recs += file_record(APP_FILE, name, size, digest)
    for name, size, digest in modules:
        recs += file_record(FW_MODULE, name, size, digest)
    if package is not None:
        recs += record(FW_PACKAGE, struct.pack(">HI", package["count"], package["size"])
                       + bytes.fromhex(package["sha256"]))
    if boot is not None:
        recs += record(BOOT, struct.pack(">IBI", *boot))
    if hw is not None:
        recs += record(HW_SECURITY, struct.pack(">H", hw[0]) + hw[1])
    recs += extra
    signed = bytes((VERSION,)) + device_id + nonce + struct.pack(">IH", device_time, len(recs)) + recs
    return signed + hmac.new(key, signed, hashlib.sha256).digest()[:TAG_LEN]
