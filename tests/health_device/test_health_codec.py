"""firmware/janua/health.py on the unix port (esp32 heap): the vectors byte for byte, strings cut on a
character boundary, clamped and missing hal values, what report() reads, when a report is due, and the
piggy-back tail binauth.Client sends. Reports are decoded with the verifier's codec."""

import json
from pathlib import Path

from verifier.health.core import decode

VECTORS = json.loads((Path(__file__).resolve().parents[2] / "docs" / "vectors" / "health.json").read_text())

FULL = [48213, 31004, 1376256, 86461, 3, 12, -67, 2, 5, "OSError 110", -3, 1048577, 65000, "1.4.2", 1]


def test_encode_matches_the_vectors(mp):
    out = mp("""
import json
from binascii import hexlify
from janua import health
print(json.dumps([hexlify(health.encode(%r)).decode(), hexlify(health.encode([])).decode(),
                  hexlify(health.encode([None] * 15)).decode()]))
""" % (FULL,))[0]
    assert out == ["017fffd5f8029cf201808054bda305030cbd02050b4f534572726f722031313005818040e8fb0305312e342e3201",
                   "010000", "010000"]


def test_piggyback_tail_matches_the_vector(mp):
    out = mp("""
import json
from binascii import hexlify, unhexlify
from janua import health
from janua.hkdf import derive
k = derive(unhexlify(%r), "health")
rep = health.encode(%r)
req = unhexlify(%r)
print(json.dumps([hexlify(k).decode(), hexlify(req + health.tail(k, rep)(req)).decode()]))
""" % (VECTORS["master_secret"], FULL, VECTORS["piggyback"]["request"]))[0]
    assert out[0] == "1843128d0fb7c6361716d09a5cefc8409a6991b0725f29ca0fcae4c2896979d3"
    assert out[1] == ("3f9a0c1b7d2e4a656955b90053a2e590e09c3a93017fffd5f8029cf201808054bda305030cbd02050b4f5345"
                      "72726f722031313005818040e8fb0305312e342e320116e8e663618bb8fc")


def test_strings_are_cut_to_32_bytes_on_a_character_boundary(mp):
    out = mp("""
import json
from binascii import hexlify
from janua import health
e = [None] * 9
print(json.dumps([hexlify(health.encode(e + [s])).decode() for s in
                  ("\\u00e9" * 20, "a" + "\\u00e9" * 20, "x" * 40, "\\u20ac" * 11)]))
""")[0]
    got = [decode(bytes.fromhex(h))["last_error"] for h in out]
    assert got == ["é" * 16, "a" + "é" * 15, "x" * 32, "€" * 10]     # 32, 31, 32 and 30 bytes


class_hal = """
class Hal:
    def __init__(self, rssi, rc, up):
        self.v = (rssi, rc, up)
    def rssi(self):
        return self.v[0]
    def reset_code(self):
        return self.v[1]
    def uptime_s(self):
        if self.v[2] is None:
            raise OSError(5)
        return self.v[2]
"""


def test_report_reads_the_hal_the_ota_pointer_and_the_counters(mp):
    (mp.flash / "ota_ptr.json").write_text(json.dumps({"active": "b", "state": "confirmed", "version": "2.0.1"}))
    out = mp(class_hal + """
import json, janua
from binascii import hexlify
from janua import health
janua.health_c[1] = 2
janua.note_error(OSError(110))
janua.note_error(ValueError("bad json"))
janua.health_c[4] = -7
janua.health_c[5] = 2 ** 32 + 5      # bytes_tx wraps at 2^32
janua.health_c[6] = 300
print(json.dumps(hexlify(health.report(Hal(-71, 3, 123), 5)).decode()))
""")[0]
    f = decode(bytes.fromhex(out))
    assert 1000 < f.pop("heap_free") <= 110 * 1024 + 8192        # the esp32 profile's heap
    assert 0 < f.pop("heap_min") <= 110 * 1024 + 8192
    assert f.pop("flash_free") > 0
    assert f == {"uptime_s": 123, "reset_cause": 3, "boot_count": 5, "rssi": -71, "auth_failures": 2, "errors": 2,
                 "last_error": "ValueError bad json", "clock_offset_s": -7, "bytes_tx": 5, "bytes_rx": 300,
                 "app_version": "2.0.1", "slot": 1}


def test_report_without_a_hal_or_ota_leaves_those_fields_out(mp):
    out = mp(class_hal + """
import json
from binascii import hexlify
from janua import health
print(json.dumps([hexlify(health.report(None, None)).decode(), hexlify(health.report(Hal(-200, 9, None), 1)).decode(),
                  hexlify(health.report(Hal(300, 7, 0), 1)).decode()]))
""")[0]
    a, b, c = (decode(bytes.fromhex(h)) for h in out)
    assert sorted(a) == ["auth_failures", "bytes_rx", "bytes_tx", "errors", "flash_free", "heap_free", "heap_min"]
    assert b["rssi"] == -128 and "reset_cause" not in b and "uptime_s" not in b     # clamped, refused, raised
    assert c["rssi"] == 127 and c["reset_cause"] == 7 and c["uptime_s"] == 0
    assert "slot" not in a and "app_version" not in a


def test_heap_min_is_the_lowest_sample(mp):
    out = mp("""
import gc, json, janua
gc.collect()
first = janua.sample()
big = bytearray(20000)
during = janua.sample()
big = None
gc.collect()
after = janua.sample()
print(json.dumps([first, during, after, janua.health_c[0]]))
""")[0]
    first, during, after, low = out
    assert during < first - 19000 and low == during and after > during


def test_due(mp):
    out = mp("""
import json
from janua.health import due
cases = [({}, {}, 1000), ({}, {"health_at": 1000}, 4599), ({}, {"health_at": 1000}, 4600),
         ({}, {"health_at": 1000}, 999), ({"health": {"interval_s": 0}}, {}, 1000),
         ({"health": {"interval_s": 60}}, {"health_at": 1000}, 1059), ({"health": {"interval_s": 60}}, {"health_at": 1000}, 1060),
         ({"health": {"interval_s": "60"}}, {}, 1000), ({}, {"health_at": "x"}, 1000)]
fresh = [({}, {"health_at": 1000}, 1001), ({"health": {"every_boot": False}}, {"health_at": 1000}, 1001),
         ({"health": {"interval_s": 0}}, {}, 1000)]
print(json.dumps([due(c, s, n) for c, s, n in cases] + [due(c, s, n, True) for c, s, n in fresh]))
""")[0]
    assert out == [True, False, True, True, False, False, True, False, True,
                   True, False, False]       # a boot's first run reports, unless every_boot is off or reports are


def test_client_appends_a_fresh_tag_to_every_request(mp):
    # a TIME_SYNC retry sends a new 20-byte request: its report must carry a tag over that request
    out = mp("""
import json
from binascii import hexlify, unhexlify
from janua import health
from janua.binauth import Client
from janua.clock import Clock
from janua.mac import HMAC
kh = bytes(range(32))
rep = health.encode([1, 2])
c = Client(unhexlify("3f9a0c1b7d2e4a65"), HMAC(bytes(32)), Clock(time_fn=lambda: 1000, epoch_offset=0), tail=health.tail(kh, rep))
a = c.request()
c.state = 2          # RETRY, as after an authenticated TIME_SYNC
b = c.request()
print(json.dumps([hexlify(a).decode(), hexlify(b).decode(), hexlify(c.request_bytes).decode()]))
""")[0]
    import hashlib
    import hmac
    a, b, last = (bytes.fromhex(h) for h in out)
    rep = bytes.fromhex("010003" "01" "02")
    for d in (a, b):
        assert len(d) == 20 + 5 + 8 and d[20:25] == rep
        assert d[25:] == hmac.new(bytes(range(32)), d[:20] + rep, hashlib.sha256).digest()[:8]
    assert a[:20] != b[:20] and last == b[:20]          # the client keeps only the 20 bytes to check the reply


def test_clock_offset_is_taken_from_an_authenticated_reply_before_the_clock_is_set(mp):
    out = mp("""
import json, struct, janua
from binascii import unhexlify
from janua.binauth import Client
from janua.clock import Clock
from janua.mac import HMAC
k = HMAC(bytes(32))
clock = Clock(time_fn=lambda: 1000, epoch_offset=0)
c = Client(unhexlify("3f9a0c1b7d2e4a65"), k, clock)
req = c.request()
spoof = struct.pack(">BI", 1, 5000)
c.receive(spoof + bytes(8))                       # unauthenticated TIME_SYNC: no offset
a = janua.health_c[4]
body = struct.pack(">BI", 1, 1300)
c.receive(body + k.digest(req, body)[:8])         # authenticated TIME_SYNC, server 300 s ahead
print(json.dumps([a, janua.health_c[4], clock.now()]))
""")[0]
    assert out == [None, 300, 1300]
