"""Ed25519 verify and SHA-512 on the MicroPython unix port (esp32 heap): RFC 8032 §7.1, the shared
vectors, and the rejections that stop forgeries and malleability."""

import json

from ota_helpers import VECTORS

L = 2**252 + 27742317777372353535851937790883648493

# RFC 8032 §7.1 TEST 1, TEST 2, TEST 3 (public key, message, signature).
RFC8032_7_1 = [
    ("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]
# RFC 8032 §7.1 TEST SHA(abc) is over SHA-512("abc"); FIPS 180-2 App. C.1 gives that digest.
SHA512_ABC = "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"

RUN = """
import json
from binascii import unhexlify as u
from janua.ed25519 import valid
from janua.sha512 import sha512, SHA512
cases = json.loads(%r)
print(json.dumps([valid(u(p), u(m), u(s)) for p, m, s in cases]))
"""


def run_cases(mp, cases):
    return mp(RUN % json.dumps(cases))[0]


def test_rfc8032_7_1_vectors(mp):
    assert run_cases(mp, RFC8032_7_1) == [True, True, True]


def test_shared_vectors(mp):
    cases = [(v["pub"], v["msg"], v["sig"]) for v in VECTORS["ed"]]
    assert run_cases(mp, cases) == [v["ok"] for v in VECTORS["ed"]]


def test_sha512_vectors_and_block_edges(mp):
    import hashlib
    lens = [0, 1, 111, 112, 127, 128, 129, 255, 256, 1000]
    out = mp("""
import json
from binascii import unhexlify as u
from janua.sha512 import sha512, SHA512
v = json.loads(%r)
res = [sha512(u(x["m"])).hex() == x["d"] for x in v]
h = SHA512(b"a")
h.update(b"b").update(b"c")
res.append(h.digest().hex())
res += [sha512(bytes(range(n %% 256)) * (n // 256) + bytes(range(n %% 256))).hex() for n in %r]
print(json.dumps(res))
""" % (json.dumps(VECTORS["sha"]), lens))[0]
    assert out[:len(VECTORS["sha"])] == [True] * len(VECTORS["sha"])
    assert out[len(VECTORS["sha"])] == SHA512_ABC
    want = [hashlib.sha512(bytes(range(n % 256)) * (n // 256) + bytes(range(n % 256))).hexdigest() for n in lens]
    assert out[len(VECTORS["sha"]) + 1:] == want


def _flip(hexs, i):
    b = bytearray.fromhex(hexs)
    b[i] ^= 1
    return b.hex()


def test_tampering_and_malleability_rejected(mp):
    pub, msg, sig = RFC8032_7_1[2]
    s = int.from_bytes(bytes.fromhex(sig[64:]), "little")
    cases = [
        (pub, "af83", sig),                                   # message changed
        (pub, msg, _flip(sig, 0)),                            # R changed
        (pub, msg, _flip(sig, 40)),                           # S changed
        (_flip(pub, 3), msg, sig),                            # other key
        (pub, msg, sig[:64] + (s + L).to_bytes(32, "little").hex()),   # S + L: same point, S >= L
        (pub, msg, sig[:64] + (2**256 - 1).to_bytes(32, "little").hex()),
        # A with y = p (non-canonical encoding of y = 0) and A = identity with the sign bit set
        ((2**255 - 19).to_bytes(32, "little").hex(), msg, sig),
        ((1 | 1 << 255).to_bytes(32, "little").hex(), msg, sig),
        (pub[:62], msg, sig),                                 # short key
        (pub, msg, sig[:126]),                                # short signature
    ]
    assert run_cases(mp, cases) == [False] * len(cases)


def test_random_keys_and_messages_against_cryptography(mp):
    # 40 signatures from an independent implementation: every window width, carry and sign of the
    # NAF digits shows up; each is also checked with one bit of the message flipped.
    import os
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    cases = []
    for i in range(40):
        k = Ed25519PrivateKey.generate()
        pub = k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
        msg = os.urandom(i * 3)
        cases.append((pub, msg.hex(), k.sign(msg).hex()))
        cases.append((pub, (msg or b"\0")[:-1].hex() + "%02x" % ((msg or b"\0")[-1] ^ 4), k.sign(msg).hex()))
    for i in range(0, 80, 20):   # the script carries its cases: 20 at a time fit the esp32 heap
        assert run_cases(mp, cases[i:i + 20]) == [True, False] * 10
