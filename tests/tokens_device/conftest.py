"""Device-side tokens and chain on the MicroPython unix port (esp32 heap): fixtures.

Chain tokens here are built to docs/tokens.md's layout and signed with a real P-256 key (the device
never checks the signature; the verifier's own encoder is used by the end-to-end test)."""

import hashlib
import struct

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tools.boards import MPRun

DEV = "3f9a0c1b7d2e4a65"
T0 = 1_767_225_600          # chain start
DAY = 86400
_KEY = ec.generate_private_key(ec.SECP256R1())


def chain_token(dev_hex, index, nbf, exp, prev, kid=b"\x01\x02\x03\x04", tenant=b"tnt1"):
    body = struct.pack(">B4s8sHII4s16s", 1, kid, bytes.fromhex(dev_hex), index, nbf, exp, tenant, prev)
    r, s = decode_dss_signature(_KEY.sign(body, ec.ECDSA(hashes.SHA256())))
    return body + r.to_bytes(32, "big") + s.to_bytes(32, "big")


def make_chain(first=0, n=30, dev_hex=DEV, start=T0, period=DAY, validity=DAY, prev=None):
    """n linked tokens from index `first`; `prev` = the token before `first` (bytes) or None."""
    out = []
    link = hashlib.sha256(prev).digest()[:16] if prev else bytes(16)
    for i in range(first, first + n):
        nbf = start + i * period
        t = chain_token(dev_hex, i, nbf, nbf + validity, link)
        out.append(t)
        link = hashlib.sha256(t).digest()[:16]
    return out


@pytest.fixture
def mp(tmp_path):
    return MPRun(tmp_path)
