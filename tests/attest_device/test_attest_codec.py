"""The evidence a board builds: the vectors byte for byte, and measure() over a known flash directory
(literal sizes and SHA-256 digests), the exclusions, and clear errors with no partial evidence."""

import json

import pytest

from verifier.attest.evidence import check_tag, decode

from attest_helpers import CFG, K_ATTEST, VECTORS

NONCE = bytes.fromhex("a0a1a2a3a4a5a6a7a8a9aaabacadaeaf")

VECTOR_SCRIPT = """
import json
from binascii import hexlify, unhexlify
from janua import attest as A
from janua.mac import HMAC
V = json.load(open("attest.json"))
mac = HMAC(unhexlify(V["k_attest"]))
for v in V["valid"]:
    m = v["measurements"]
    recs = []
    for t, k in ((1, "micropython"), (2, "build"), (3, "board")):
        if k in m:
            recs.append(A.text_record(t, m[k]))
    if "app" in m:
        recs.append(A.app_record(m["app"]["slot"], m["app"]["trial"], m["app"]["version"]))
    for f in m.get("files", ()):
        recs.append(A.file_record(5, f["path"], f["size"], unhexlify(f["sha256"])))
    for f in m.get("modules", ()):
        recs.append(A.file_record(6, f["name"], f["size"], unhexlify(f["sha256"])))
    if "boot" in m:
        b = m["boot"]
        recs.append(A.boot_record(b["boot_count"], b["reset_cause"], b["uptime_s"]))
    if "hw" in m:
        recs.append(A.hw_record(m["hw"]["flags"], unhexlify(m["hw"]["raw"])))
    if "extension" in v:
        x = unhexlify(v["extension"])
        recs.append(A.record(x[0], x[2:]))
    ev = A.encode(mac, unhexlify(V["device_id"]), unhexlify(V["nonce"]), V["device_time"], recs)
    print(json.dumps({"name": v["name"], "hex": hexlify(ev).decode()}))
"""


def test_vectors_byte_for_byte(mp):
    (mp.flash / "attest.json").write_text(json.dumps(VECTORS))
    out = {o["name"]: o["hex"] for o in mp(VECTOR_SCRIPT)}
    assert out == {v["name"]: v["evidence"] for v in VECTORS["valid"]}
    assert sorted(out) == ["extension_record_skipped", "full", "header_only"]


# -- measure() over a flash directory --------------------------------------------------------

MAIN = b"print('hi')\n"                               # 12 bytes
UTIL = b"def f():\n    return 1\n"                    # 22 bytes
BIG = bytes(range(256)) * 5 + b"tail"                 # 1284 bytes: three reads of the 512-byte buffer
MOD = b"x" * 10
SHA_MAIN = "caf026f25d7140209f98072605307a438914b9ce6f3c14b23d15d9667241de52"
SHA_UTIL = "5b76d0962c09ab4ee309fac65fad3568c97abdec983b405146ae3e86a235e352"
SHA_BIG = "b2ab79fa78fa8f29d6685a6abf83c4976c35938aaf318c20982cd5816f65b71f"
SHA_MOD = "fc11d6f28e59d3cc33c0b14ceb644bf0902ebd63d61218dffe9e7dac7c254542"

MEASURE = """
import json
from binascii import hexlify
from janua.attest import Attester, AttestError
att = Attester(%r, pkg=%r)
try:
    print(json.dumps({"ev": hexlify(att.evidence(%r, 1767225600)).decode()}))
except AttestError as e:
    print(json.dumps({"error": str(e)}))
"""


def measure(mp, pkg="pkg", script=MEASURE, board="esp32"):
    out = mp(script % (CFG, pkg, NONCE), board=board)
    return out[-1]


def evidence(mp, **kw):
    r = measure(mp, **kw)
    assert "ev" in r, r
    ev = decode(bytes.fromhex(r["ev"]))
    assert check_tag(ev, K_ATTEST)
    return ev


def flash_slot(flash, active="a", state="trial", version="1.2.0"):
    (flash / "ota_ptr.json").write_text(json.dumps({"active": active, "state": state, "version": version}))
    a = flash / "app_a"
    (a / "lib").mkdir(parents=True)
    (a / "main.py").write_bytes(MAIN)
    (a / "lib" / "util.py").write_bytes(UTIL)
    (a / "data.bin").write_bytes(BIG)
    (a / ".manifest.json").write_text("{}")
    (flash / "app_b").mkdir()
    (flash / "app_b" / "old.py").write_bytes(b"old\n")
    pkg = flash / "pkg"
    pkg.mkdir()
    (pkg / "binauth.mpy").write_bytes(MOD)
    (pkg / "notes.txt").write_text("not a module")
    (pkg / ".hidden.py").write_text("")
    (flash / "janua_state.json").write_text(json.dumps({"boots": 5, "last_sent": 3}))
    (flash / "janua.json").write_text(json.dumps(CFG))


def test_measured_slot_has_literal_sizes_and_digests(mp):
    flash_slot(mp.flash)
    ev = evidence(mp)
    assert ev.device_id.hex() == VECTORS["device_id"] and ev.nonce == NONCE and ev.time == 1767225600
    assert ev.files == {"main.py": (12, SHA_MAIN), "lib/util.py": (22, SHA_UTIL), "data.bin": (1284, SHA_BIG)}
    assert ev.modules == {"binauth.mpy": (10, SHA_MOD)}
    assert ev.app == {"slot": "app_a", "trial": True, "version": "1.2.0"}
    assert ev.board == "unix" and ev.micropython == "1.29.0"
    assert ev.build.startswith("3.4.0; MicroPython")      # the unix port has no os.uname: sys.version
    assert ev.boot == {"boot_count": 5, "reset_cause": "unknown", "uptime_s": 0}
    assert ev.hw is None                                     # the unix hal reports no hardware state


def test_app_b_confirmed_is_slot_2(mp):
    flash_slot(mp.flash, active="b", state="confirmed", version="0.9")
    ev = evidence(mp)
    assert ev.app == {"slot": "app_b", "trial": False, "version": "0.9"}
    assert ev.files == {"old.py": (4, "01d09d19c2139a46aebfb577780d123d7396e97201bc7ead210a2ebff8239dee")}


def test_changed_file_changes_only_its_digest(mp):
    flash_slot(mp.flash)
    before = evidence(mp).files
    (mp.flash / "app_a" / "data.bin").write_bytes(BIG[:-1] + b"L")
    after = evidence(mp).files
    assert after["data.bin"] != before["data.bin"] and after["data.bin"][0] == 1284
    assert after["main.py"] == before["main.py"] == (12, SHA_MAIN)


@pytest.mark.parametrize("name", ["janua.json", "janua_state.json", "janua_cert.der", "janua_key.der",
                                  "janua_ca.der", "token.json", "chain.bin", "chain.used", "janua.json.tmp",
                                  ".manifest.json", ".secret"])
def test_credential_and_dot_files_are_never_measured(mp, name):
    flash_slot(mp.flash)
    (mp.flash / "app_a" / name).write_bytes(b"master secret would be here")
    (mp.flash / "app_a" / "lib" / name).write_bytes(b"and here")
    ev = evidence(mp)
    assert sorted(ev.files) == ["data.bin", "lib/util.py", "main.py"]


def test_factory_application_is_main_and_boot_at_the_root(mp):
    (mp.flash / "main.py").write_bytes(MAIN)
    (mp.flash / "boot.py").write_bytes(UTIL)
    (mp.flash / "other.py").write_bytes(b"not the app\n")
    (mp.flash / "janua.json").write_text(json.dumps(CFG))
    ev = evidence(mp, pkg="")
    assert ev.app == {"slot": "factory", "trial": False, "version": None}
    assert ev.files == {"main.py": (12, SHA_MAIN), "boot.py": (22, SHA_UTIL)}
    assert ev.modules == {}
    assert ev.boot["boot_count"] == 0


def test_installed_janua_package_is_measured_where_it_was_imported(mp):
    # without pkg=: the directory janua was imported from (firmware/janua in this run)
    (mp.flash / "main.py").write_bytes(MAIN)
    r = mp(MEASURE.replace(", pkg=%r", "") % (CFG, NONCE))[-1]
    ev = decode(bytes.fromhex(r["ev"]))
    assert {"__init__.py", "attest.py", "mac.py", "hkdf.py"} <= set(ev.modules)
    assert all(n.endswith(".py") for n in ev.modules)


# -- failures: a clear error, no evidence ---------------------------------------------------

FAULTY = """
import json
from janua.attest import Attester, AttestError, Flash

class Faulty(Flash):
    # the real flash, with one fault: %r
    def __init__(self, mode, path):
        self.mode, self.path, self.listed = mode, path, 0
    def open(self, p, m):
        if p == self.path and self.mode == "missing":
            raise OSError(2)
        f = open(p, m)
        if p == self.path and self.mode == "eio":
            class Bad:
                def readinto(self, b):
                    raise OSError(5)
                def close(self):
                    f.close()
            return Bad()
        return f
    def ilistdir(self, d):
        if self.mode in ("grows", "shrinks") and d == "app_a":
            self.listed += 1
            if self.listed == 2 and self.mode == "grows":   # a file appears between the two walks
                with open("app_a/new.py", "wb") as f:
                    f.write(b"new")
            elif self.listed == 2:                          # a file goes between the two walks
                import os
                os.remove("app_a/main.py")
        return Flash.ilistdir(self, d)

att = Attester(%r, pkg="pkg", fs=Faulty(%r, "app_a/data.bin"))
try:
    att.evidence(%r, 1)
    print(json.dumps({"ev": "made"}))
except AttestError as e:
    print(json.dumps({"error": str(e)}))
"""


@pytest.mark.parametrize("mode, message", [
    ("missing", "cannot open app_a/data.bin: [Errno 2] ENOENT"),
    ("eio", "cannot read app_a/data.bin: [Errno 5] EIO"),
    ("grows", "the flash changed during measurement"),
    ("shrinks", "the flash changed during measurement"),
])
def test_unreadable_or_changing_flash_gives_a_clear_error_and_no_evidence(mp, mode, message):
    flash_slot(mp.flash)
    out = mp(FAULTY % (mode, CFG, mode, NONCE))
    assert out == [{"error": message}]


def test_unlistable_slot_gives_a_clear_error(mp):
    (mp.flash / "ota_ptr.json").write_text(json.dumps({"active": "a", "state": "confirmed"}))
    r = measure(mp, pkg="")
    assert r["error"].startswith("measurement failed: [Errno 2]")


def test_more_than_64_files_is_refused_not_truncated(mp):
    flash_slot(mp.flash)
    for i in range(62):
        (mp.flash / "app_a" / ("f%02d.py" % i)).write_bytes(b"")
    assert measure(mp) == {"error": "65 files, 1 modules: at most 64 and 96"}


def test_name_over_64_bytes_is_refused_not_dropped(mp):
    flash_slot(mp.flash)
    (mp.flash / "app_a" / ("n" * 62 + ".py")).write_bytes(b"")
    assert measure(mp)["error"] == "n" * 62 + ".py: a measured name is 1 to 64 bytes"
