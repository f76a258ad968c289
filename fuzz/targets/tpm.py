"""Gateway TPM evidence (verifier/gateway/core.py, docs/attestation.md section 6). An input is up to
four messages (fuzz.harness.SEP): a TPM2B_PUBLIC, a TPMS_ATTEST, a TPMT_SIGNATURE and the PCR values.
The public area is parsed and checked as an AK and as an EK; the quote is verified as sent against the
recorded swtpm AK, and again re-signed by the harness's own P-256 key (an AK public area the harness
builds), so that mutated quotes reach the checks behind the signature (qualified signer, selection,
PCR digest). The one documented error is TPMError; a quote that verifies has a 32-byte PCR digest and
the one selection of PCRs 0-7, SHA-256."""

import hashlib
import json
import struct
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from fuzz.harness import check, frames, join
from verifier.gateway import core

ALLOWED = (core.TPMError,)
VECTORS = json.loads((Path(__file__).resolve().parents[2] / "tests" / "gateway" / "vectors.json").read_text())
KEY = ec.derive_private_key(0x5EED, ec.SECP256R1())


def _ecc_public(key):
    n = key.public_key().public_numbers()
    area = (struct.pack(">HHI", core.ALG_ECC, core.ALG_SHA256, core.AK_ATTRIBUTES) + b"\x00\x00"
            + struct.pack(">HHHHH", core.ALG_NULL, core.ALG_ECDSA, core.ALG_SHA256, core.ECC_NIST_P256, core.ALG_NULL)
            + b"\x00\x20" + n.x.to_bytes(32, "big") + b"\x00\x20" + n.y.to_bytes(32, "big"))
    return struct.pack(">H", len(area)) + area


OWN_AK = core.decode_public(_ecc_public(KEY))
OWN_SIGNER = b"\x00\x0b" + hashlib.sha256(b"fuzz signer").digest()
RSA = VECTORS["rsa"]
RSA_AK = core.decode_public(bytes.fromhex(RSA["ak_public"]))
RSA_SIGNER = core.qualified_name_under_ek(core.decode_public(bytes.fromhex(VECTORS["ek_public"])), RSA_AK)


def _sign(attest):
    r, s = decode_dss_signature(KEY.sign(attest, ec.ECDSA(hashes.SHA256())))
    return struct.pack(">HH", core.ALG_ECDSA, core.ALG_SHA256) + b"\x00\x20" + r.to_bytes(32, "big") + b"\x00\x20" + s.to_bytes(32, "big")


def _accepted(q, failure):
    if failure is None:
        check(len(q.pcr_digest) == 32, "a verified quote with a PCR digest that is not 32 bytes")
        check(q.selection == [(core.ALG_SHA256, core.PCR_SELECT)], "a verified quote of another selection")


def make(workdir):
    def one_input(data):
        parts = frames(data, 4) + [b""] * 4
        public, attest, signature, pcrs = parts[:4]
        try:
            p = core.decode_public(public)
            for verify in (core.verify_ak_public, core.verify_ek_public):
                try:
                    verify(p)
                except core.TPMError:
                    pass
        except core.TPMError:
            pass
        try:
            _accepted(*core.verify_quote(RSA_AK, attest, signature, pcrs, RSA_SIGNER))
        except core.TPMError:
            pass
        if len(attest) <= core.MAX_ATTEST:
            _accepted(*core.verify_quote(OWN_AK, attest, _sign(attest), pcrs if len(pcrs) == 256 else bytes(256),
                                         OWN_SIGNER))

    return one_input


def _own_quote(pcrs, nonce=b"\x01" * 32):
    digest = hashlib.sha256(pcrs).digest()
    return (struct.pack(">IH", core.GENERATED_VALUE, core.ST_ATTEST_QUOTE) + struct.pack(">H", len(OWN_SIGNER))
            + OWN_SIGNER + struct.pack(">H", len(nonce)) + nonce + struct.pack(">QIIB", 1000, 1, 0, 1)
            + struct.pack(">Q", 7) + struct.pack(">IHB", 1, core.ALG_SHA256, 3) + core.PCR_SELECT
            + struct.pack(">H", 32) + digest)


def seeds(workdir):
    rsa = [bytes.fromhex(RSA[k]) for k in ("ak_public", "quote", "signature", "pcrs")]
    ecc = VECTORS["ecc"]
    pcrs = bytes(range(256))
    return [join(rsa), join([bytes.fromhex(ecc[k]) for k in ("ak_public", "quote", "signature", "pcrs")]),
            join([bytes.fromhex(VECTORS["ek_public"]), _own_quote(pcrs), b"", pcrs])]
