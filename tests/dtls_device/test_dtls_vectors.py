"""Known-answer tests for the device DTLS pieces on the MicroPython unix port (esp32 heap):
AES-128-CCM_8 (docs/vectors/aes_ccm8_and_prf.json, made with cryptography's AESCCM), the TLS 1.2
PRF (the IETF TLS-list P_SHA256 vector, PROTOCOLS.md 1.11), the DTLS-PSK key schedule and the
epoch-1 Finished record (docs/vectors/dtls_psk_ccm8_key_schedule.json), and the record layer's
replay window and tamper handling (RFC 6347 4.1.2.6-7) driven sans-IO."""

import json

from dtls_peers import VECTORS

CCM_PRF = json.loads((VECTORS / "aes_ccm8_and_prf.json").read_text())
KS = json.loads((VECTORS / "dtls_psk_ccm8_key_schedule.json").read_text())

PRELUDE = """
import json
from binascii import unhexlify as U, hexlify
def H(b):
    return hexlify(b).decode()
"""


def test_ccm8_vectors_encrypt_decrypt_and_tamper(mp):
    out = mp(PRELUDE + """
from janua.ccm import CCM8
class C:
    def __init__(self, k):
        self.c = CCM8(k)
    def encrypt(self, n, a, p):
        b = bytearray(p) + bytes(8)
        self.c.seal(n, a, b, 0, len(p))
        return b
    def decrypt(self, n, a, c):
        m = bytearray(len(c) - 8)
        return m if self.c.open(n, a, c, 0, len(m), m) else None
V = %r
for v in V:
    c = C(U(v["key"]))
    n, a, p, ct = U(v["nonce"]), U(v["aad"]), U(v["pt"]), U(v["ct"])
    enc = H(c.encrypt(n, a, p))
    dec = c.decrypt(n, a, ct)
    bad = []
    for i in (0, len(ct) - 1, len(ct) // 2):   # a flipped bit in ciphertext or tag
        t = bytearray(ct)
        t[i] ^= 1
        bad.append(c.decrypt(n, a, bytes(t)))
    bad.append(c.decrypt(n, a[:-1] + bytes((a[-1] ^ 0x80,)), ct))  # other AAD
    bad.append(c.decrypt(n[:-1] + b"\\0", a, ct))  # other nonce
    print(json.dumps({"enc": enc, "dec": H(dec) if dec is not None else None,
                      "bad": [b is None for b in bad]}))
""" % CCM_PRF["ccm"])
    assert len(out) == len(CCM_PRF["ccm"]) == 8
    for v, r in zip(CCM_PRF["ccm"], out):
        assert r["enc"] == v["ct"]
        assert r["dec"] == v["pt"]
        assert all(r["bad"])


def test_ccm8_empty_plaintext_is_tag_only_and_checked(mp):
    # A record with no plaintext is 8 tag bytes; open() must still verify them.
    out = mp(PRELUDE + """
from janua.ccm import CCM8
c = CCM8(bytes(16))
b = bytearray(8)
c.seal(bytes(12), b"aad", b, 0, 0)
m = bytearray(0)
ok = c.open(bytes(12), b"aad", b, 0, 0, m)
b[7] ^= 1
print(json.dumps([ok, c.open(bytes(12), b"aad", b, 0, 0, m), b != bytearray(8)]))
""")
    assert out == [[True, False, True]]


def test_prf_tls12_sha256_vector(mp):
    v = CCM_PRF["prf"][0]
    out = mp(PRELUDE + """
from janua.prf import prf
print(json.dumps(H(prf(U(%r), %r, U(%r), 100))))
""" % (v["secret"], v["label"].encode(), v["seed"]))
    assert out == [v["out"]]


def test_key_schedule_and_finished_record_kat(mp):
    out = mp(PRELUDE + """
from janua import prf as P
from janua.dtls_record import RecordLayer
from janua.dtls import _hs
from hashlib import sha256
psk, cr, sr = U(%r), U(%r), U(%r)
ms = P.master_secret(psk, cr, sr)
kb = P.key_block(ms, cr, sr)
cw, sw, civ, siv = kb[0:16], kb[16:32], kb[32:36], kb[36:40]
vd = P.prf(ms, b"client finished", sha256(bytes(range(256))).digest(), 12)
fin = bytearray(12) + vd
_hs(fin, 0, 20, 3, 12)
rl = RecordLayer()
rl.set_keys(kb)
rec = rl.seal(22, fin, 1)
print(json.dumps({"pms": H(P.premaster(psk)), "ms": H(ms), "cw": H(cw), "sw": H(sw),
                  "civ": H(civ), "siv": H(siv), "vd": H(vd), "fin": H(fin), "rec": H(rec)}))
""" % (KS["psk"], KS["client_random"], KS["server_random"]))
    r = out[0]
    assert r["pms"] == KS["premaster"]
    assert r["ms"] == KS["master_secret"]
    assert (r["cw"], r["sw"]) == (KS["client_write_key"], KS["server_write_key"])
    assert (r["civ"], r["siv"]) == (KS["client_write_IV"], KS["server_write_IV"])
    assert r["vd"] == KS["client_verify_data"]
    assert r["fin"] == KS["finished_handshake_msg"]
    assert r["rec"] == KS["record"]


# The client's record layer reads with the "server" keys that a second record layer (playing the
# server, keys swapped) writes with: real records, no fakes.
RECORDS = PRELUDE + """
from janua.dtls_record import RecordLayer
k1, k2, i1, i2 = bytes(range(16)), bytes(range(16, 32)), b"abcd", b"efgh"
srv = RecordLayer(); srv.set_keys(k2 + k1 + i2 + i1)
cli = RecordLayer(); cli.set_keys(k1 + k2 + i1 + i2); cli.read_epoch = 1
def records(rl, d):
    out = []
    o = 0
    while True:
        o = rl.open(d, o)
        if o < 0:
            return out
        if rl.typ:
            out.append((rl.typ, bytes(rl.body[rl.s:rl.e])))
def got(d):
    return [b.decode() for t, b in records(cli, d)]
"""


def test_replayed_record_is_dropped(mp):
    out = mp(RECORDS + """
r0 = srv.seal(23, b"zero", 1)
r1 = srv.seal(23, b"one", 1)
res = [got(r0), got(r0), got(r1), got(r0 + r1), got(r1 + r0)]
print(json.dumps(res))
""")
    assert out == [[["zero"], [], ["one"], [], []]]


def test_reordered_records_inside_the_window_are_accepted_and_old_ones_dropped(mp):
    out = mp(RECORDS + """
recs = [srv.seal(23, b"%d" % i, 1) for i in range(70)]
res = [got(recs[5]), got(recs[2]), got(recs[69]), got(recs[6]), got(recs[5]), got(recs[4])]
print(json.dumps(res))
""")
    # 69 - 6 = 63 is still inside a 64-record window, 69 - 5 = 64 is not.
    assert out == [[["5"], ["2"], ["69"], ["6"], [], []]]


def test_tampered_record_is_dropped_silently_and_does_not_burn_its_sequence_number(mp):
    out = mp(RECORDS + """
r = srv.seal(23, b"data", 1)
res = []
for i in (13, 21, len(r) - 1, 3, 12):   # nonce, ciphertext, tag, epoch, length
    t = bytearray(r); t[i] ^= 1
    res.append(got(bytes(t)))
res.append(got(r))   # the genuine record still gets through afterwards
res.append(got(r[:-1]))   # truncated
res.append(got(b"\\x17\\xfe\\xfd\\x00\\x01" + bytes(6) + b"\\x00\\x05hello"))  # too short for a tag
print(json.dumps(res))
""")
    assert out == [[[], [], [], [], [], ["data"], [], []]]


def test_epoch0_records_and_multiple_records_per_datagram(mp):
    out = mp(RECORDS + """
cli2 = RecordLayer()
d = srv.seal(22, b"hs", 0) + srv.seal(20, b"\\x01", 0) + b"\\x16\\xfe\\xfd\\x00"  # junk tail
print(json.dumps([[t, bytes(b).decode()] for t, b in records(cli2, d)]))
print(json.dumps(got(srv.seal(22, b"x", 0))))   # epoch 0 while reading epoch 1: dropped
""")
    assert out == [[[22, "hs"], [20, "\x01"]], []]
