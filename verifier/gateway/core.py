"""TPM 2.0 attestation of edge gateways, sans-IO (docs/attestation.md section 6), on `cryptography`.

What it does: parse a TPM2B_PUBLIC (RSA 2048 or ECC P-256; restricted signing AKs, restricted decrypting
EKs), compute an object's name and qualified name (nameAlg SHA-256), make a credential for an AK under an
RSA EK (TPM 2.0 Part 1 section 24, Part 3 TPM2_MakeCredential: a random seed, OAEP with label
"IDENTITY\\0", KDFa, AES-128-CFB, the outer HMAC), parse TPMS_ATTEST of a quote and TPMT_SIGNATURE,
verify the quote (signature by the AK, qualified signer, PCR selection, PCR digest over the reported
values), compare the PCR values with a model's reference, verify an EK certificate chain against
registered EK CA certificates, and turn it all into the AR4SI vector of an EAR.

What it deliberately does not do: MakeCredential for an ECC EK (ECDH seed; enrolment refuses one),
the PCR event log (only PCR values are compared, so a mismatch says which PCR, not which event), other
hash banks than SHA-256, or any I/O: the caller passes the time and the randomness.
"""

import hashlib
import hmac
import os
import struct

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from verifier.attest import ear
from verifier.errors import VerifierError

# TPM 2.0 Part 2 constants
ALG_RSA, ALG_SHA256, ALG_AES, ALG_NULL, ALG_ECC = 0x0001, 0x000B, 0x0006, 0x0010, 0x0023
ALG_RSASSA, ALG_ECDSA, ALG_CFB = 0x0014, 0x0018, 0x0043
ECC_NIST_P256 = 0x0003
GENERATED_VALUE = 0xFF544347          # TPM_GENERATED_VALUE: "\xffTCG"
ST_ATTEST_QUOTE = 0x8018
RH_ENDORSEMENT = 0x4000000B
# TPMA_OBJECT bits
FIXED_TPM, FIXED_PARENT, SENSITIVE_DATA_ORIGIN = 1 << 1, 1 << 4, 1 << 5
RESTRICTED, DECRYPT, SIGN = 1 << 16, 1 << 17, 1 << 18
AK_ATTRIBUTES = FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | RESTRICTED | SIGN
EK_ATTRIBUTES = FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | RESTRICTED | DECRYPT

MAX_PUBLIC = 1024       # a TPM2B_PUBLIC of an RSA 2048 key is 316 bytes, ECC P-256 120
MAX_ATTEST = 1024       # TPMS_ATTEST of a quote over one bank is about 130 bytes
MAX_SIGNATURE = 600
MAX_CERT = 4096
PCR_INDICES = tuple(range(8))          # the PCRs a gateway quotes: 0-7 of the SHA-256 bank
PCR_SELECT = bytes((0xFF, 0x00, 0x00))  # sizeofSelect 3, PCRs 0-7
CREDENTIAL_BYTES = 32
IDENTITY_LABEL = b"IDENTITY\x00"

# PCR -> what it measures on a PC platform (TCG PC Client PFP), and whether a mismatch is code
# (executables) or configuration
EXECUTABLE_PCRS = (0, 2, 4)            # SRTM/firmware, option ROM code, boot loader
CONFIG_PCRS = (1, 3, 5, 6, 7)          # firmware config, option ROM config, GPT/boot config, platform, Secure Boot policy


class TPMError(VerifierError):
    """TPM data (a public area, a quote, a signature, a certificate) is malformed or unsupported."""

    code = "invalid_tpm_data"


# -- reading TPM structures ----------------------------------------------------------------------------

class _Reader:
    def __init__(self, data, what):
        self.data, self.pos, self.what = data, 0, what

    def take(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise TPMError(f"{self.what}: truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack(">H", self.take(2))[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def u64(self):
        return struct.unpack(">Q", self.take(8))[0]

    def tpm2b(self, cap=None):
        n = self.u16()
        if cap is not None and n > cap:
            raise TPMError(f"{self.what}: a field of {n} bytes is over {cap}")
        return self.take(n)

    def end(self):
        if self.pos != len(self.data):
            raise TPMError(f"{self.what}: {len(self.data) - self.pos} trailing bytes")


def _scheme(r):
    alg = r.u16()
    return alg, (r.u16() if alg != ALG_NULL else None)


class TPMPublic:
    """A parsed TPMT_PUBLIC: .type ('rsa' or 'ecc'), .attributes, .key (a cryptography public key),
    .sym_bits (128 for an EK with AES-128-CFB, else 0), .scheme (signing scheme alg or None), .area
    (the TPMT_PUBLIC bytes) and .name (nameAlg || SHA-256(area))."""

    __slots__ = ("type", "attributes", "key", "sym_bits", "scheme", "area", "name", "auth_policy")


def decode_public(data):
    """A TPM2B_PUBLIC (u16 size || TPMT_PUBLIC) -> TPMPublic; TPMError if malformed or unsupported."""
    if not isinstance(data, bytes) or len(data) > MAX_PUBLIC:
        raise TPMError(f"a TPM2B_PUBLIC is bytes of at most {MAX_PUBLIC}")
    outer = _Reader(data, "TPM2B_PUBLIC")
    area = outer.tpm2b()
    outer.end()
    r = _Reader(area, "TPMT_PUBLIC")
    p = TPMPublic()
    alg, name_alg = r.u16(), r.u16()
    if name_alg != ALG_SHA256:
        raise TPMError("only nameAlg SHA-256 is supported")
    p.attributes = r.u32()
    p.auth_policy = r.tpm2b(64)
    sym = r.u16()
    p.sym_bits = 0
    if sym != ALG_NULL:
        bits, mode = r.u16(), r.u16()
        if sym != ALG_AES or mode != ALG_CFB:
            raise TPMError("a storage key's symmetric algorithm must be AES-CFB")
        p.sym_bits = bits
    if alg == ALG_RSA:
        p.type = "rsa"
        p.scheme, _ = _scheme(r)
        bits, exponent = r.u16(), r.u32()
        n = r.tpm2b(512)
        if bits != 2048 or len(n) != 256:
            raise TPMError("only RSA 2048 is supported")
        try:
            p.key = rsa.RSAPublicNumbers(exponent or 65537, int.from_bytes(n, "big")).public_key()
        except ValueError:             # an even or tiny exponent, or a modulus cryptography refuses
            raise TPMError("the RSA public key is not valid (exponent or modulus)") from None
    elif alg == ALG_ECC:
        p.type = "ecc"
        p.scheme, _ = _scheme(r)
        curve = r.u16()
        _scheme(r)                     # kdf
        x, y = r.tpm2b(66), r.tpm2b(66)
        if curve != ECC_NIST_P256 or len(x) != 32 or len(y) != 32:
            raise TPMError("only ECC P-256 is supported")
        try:
            p.key = ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"),
                                                  ec.SECP256R1()).public_key()
        except ValueError:
            raise TPMError("the ECC point is not on P-256") from None
    else:
        raise TPMError(f"unsupported key type 0x{alg:04x}")
    r.end()
    p.area = area
    p.name = struct.pack(">H", ALG_SHA256) + hashlib.sha256(area).digest()
    return p


def verify_ak_public(p):
    """Raise TPMError unless `p` is an attestation key: a restricted signing key fixed to its TPM,
    generated inside it (so it can only sign TPM-generated structures such as quotes)."""
    if p.attributes & (AK_ATTRIBUTES | DECRYPT) != AK_ATTRIBUTES:
        raise TPMError("the AK must be fixedTPM, fixedParent, sensitiveDataOrigin, restricted, sign and not decrypt")


def verify_ek_public(p):
    """Raise TPMError unless `p` is an RSA 2048 endorsement key (restricted decryption, AES-128-CFB)."""
    if p.attributes & (EK_ATTRIBUTES | SIGN) != EK_ATTRIBUTES:
        raise TPMError("the EK must be fixedTPM, fixedParent, sensitiveDataOrigin, restricted, decrypt and not sign")
    if p.type != "rsa":
        raise TPMError("only an RSA 2048 EK is supported for credential activation")
    if p.sym_bits != 128:
        raise TPMError("the EK's symmetric algorithm must be AES-128-CFB")


def qualified_name_under_ek(ek, ak):
    """The qualified name of `ak` created under the primary `ek` of the endorsement hierarchy
    (Part 1 section 16: QN(child) = nameAlg || H(QN(parent) || name(child)), the hierarchy's QN its handle)."""
    ek_qn = struct.pack(">H", ALG_SHA256) + hashlib.sha256(struct.pack(">I", RH_ENDORSEMENT) + ek.name).digest()
    return struct.pack(">H", ALG_SHA256) + hashlib.sha256(ek_qn + ak.name).digest()


# -- credential activation -------------------------------------------------------------------------------

def kdfa(key, label, context_u, context_v, bits):
    """KDFa with HMAC-SHA256 (Part 1 section 11.4.10.2): label is given without its terminating zero."""
    out, i = b"", 1
    while len(out) * 8 < bits:
        out += hmac.new(key, struct.pack(">I", i) + label + b"\x00" + context_u + context_v
                        + struct.pack(">I", bits), hashlib.sha256).digest()
        i += 1
    return out[:bits // 8]


def make_credential(ek, ak_name, credential, rand=os.urandom):
    """TPM2_MakeCredential outside the TPM for an RSA EK: (credentialBlob as TPM2B_ID_OBJECT,
    secret as TPM2B_ENCRYPTED_SECRET). Only the TPM holding the EK's private key, with an object named
    `ak_name` loaded, returns `credential` from TPM2_ActivateCredential."""
    verify_ek_public(ek)
    if not 1 <= len(credential) <= 32:
        raise ValueError("a credential is 1 to 32 bytes")
    seed = rand(32)                                   # the size of the EK's nameAlg digest
    secret = ek.key.encrypt(seed, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(),
                                               label=IDENTITY_LABEL))
    sym_key = kdfa(seed, b"STORAGE", ak_name, b"", 128)
    enc = Cipher(algorithms.AES(sym_key), CFB(bytes(16))).encryptor()
    enc_identity = enc.update(struct.pack(">H", len(credential)) + credential) + enc.finalize()
    hmac_key = kdfa(seed, b"INTEGRITY", b"", b"", 256)
    outer = hmac.new(hmac_key, enc_identity + ak_name, hashlib.sha256).digest()
    id_object = struct.pack(">H", len(outer)) + outer + enc_identity
    return struct.pack(">H", len(id_object)) + id_object, struct.pack(">H", len(secret)) + secret


# -- quotes --------------------------------------------------------------------------------------------

class Quote:
    """A parsed TPMS_ATTEST of a quote. Everything here is read before the signature is checked: use
    it only after verify_quote."""

    __slots__ = ("signer", "extra_data", "clock", "reset_count", "restart_count", "safe", "firmware",
                 "selection", "pcr_digest")


def decode_quote_unverified(data):
    """A TPMS_ATTEST of TPM2_Quote -> Quote; TPMError if malformed or not a quote."""
    if not isinstance(data, bytes) or len(data) > MAX_ATTEST:
        raise TPMError(f"a quote is bytes of at most {MAX_ATTEST}")
    r = _Reader(data, "TPMS_ATTEST")
    if r.u32() != GENERATED_VALUE:
        raise TPMError("not a TPM-generated structure (magic)")
    if r.u16() != ST_ATTEST_QUOTE:
        raise TPMError("not a quote (type)")
    q = Quote()
    q.signer = r.tpm2b(66)
    q.extra_data = r.tpm2b(64)
    q.clock, q.reset_count, q.restart_count, q.safe = r.u64(), r.u32(), r.u32(), r.u8()
    q.firmware = r.u64()
    count = r.u32()
    if count > 16:
        raise TPMError("too many PCR selections")
    q.selection = []
    for _ in range(count):
        alg, size = r.u16(), r.u8()
        if size > 8:
            raise TPMError("a PCR select bitmap is at most 8 bytes")
        q.selection.append((alg, r.take(size)))
    q.pcr_digest = r.tpm2b(64)
    r.end()
    return q


def decode_signature(data):
    """A TPMT_SIGNATURE -> (sigAlg, hashAlg, DER-or-raw signature for cryptography)."""
    if not isinstance(data, bytes) or len(data) > MAX_SIGNATURE:
        raise TPMError(f"a signature is bytes of at most {MAX_SIGNATURE}")
    r = _Reader(data, "TPMT_SIGNATURE")
    alg, hash_alg = r.u16(), r.u16()
    if alg == ALG_RSASSA:
        sig = r.tpm2b(512)
    elif alg == ALG_ECDSA:
        sig_r, sig_s = r.tpm2b(66), r.tpm2b(66)
        sig = encode_dss_signature(int.from_bytes(sig_r, "big"), int.from_bytes(sig_s, "big"))
    else:
        raise TPMError(f"unsupported signature scheme 0x{alg:04x}")
    r.end()
    if hash_alg != ALG_SHA256:
        raise TPMError("only SHA-256 signatures are supported")
    return alg, hash_alg, sig


def verify_signature(ak, attest, signature):
    """True when `signature` (TPMT_SIGNATURE) is the AK's signature over `attest`."""
    alg, _, sig = decode_signature(signature)
    try:
        if ak.type == "rsa" and alg == ALG_RSASSA:
            ak.key.verify(sig, attest, padding.PKCS1v15(), hashes.SHA256())
            return True
        if ak.type == "ecc" and alg == ALG_ECDSA:
            ak.key.verify(sig, attest, ec.ECDSA(hashes.SHA256()))
            return True
    except InvalidSignature:
        return False
    return False


def pcr_values_of(data):
    """The reported PCR values: 8 x 32 bytes (PCR 0 to 7 of the SHA-256 bank, in order)."""
    if not isinstance(data, bytes) or len(data) != 32 * len(PCR_INDICES):
        raise TPMError("the PCR values are 8 SHA-256 digests (256 bytes), PCR 0 to 7")
    return [data[i * 32:(i + 1) * 32] for i in PCR_INDICES]


def verify_quote(ak, attest, signature, pcr_values, qualified_signer):
    """The checks of a quote that come before its nonce: (Quote, failure reason or None).
    TPMError for malformed input. Reasons: signature, signer, selection, pcr_digest."""
    q = decode_quote_unverified(attest)
    values = pcr_values_of(pcr_values)
    if not verify_signature(ak, attest, signature):
        return q, "signature"
    # from here the attest structure is the AK's
    if not hmac.compare_digest(q.signer, qualified_signer):
        return q, "signer"
    if q.selection != [(ALG_SHA256, PCR_SELECT)]:
        return q, "selection"
    if not hmac.compare_digest(q.pcr_digest, hashlib.sha256(b"".join(values)).digest()):
        return q, "pcr_digest"
    return q, None


def compare_pcrs(values, reference):
    """PCR indices whose value differs from `reference` ({index: 32 bytes}); indices the reference
    does not name are not compared."""
    return [i for i in PCR_INDICES if i in reference and not hmac.compare_digest(values[i], reference[i])]


# -- EK certificates ------------------------------------------------------------------------------------

def load_cert(data):
    """An X.509 certificate from DER or PEM bytes (an EK certificate read from NV may carry zero padding
    after its DER: it is cut at the DER length)."""
    if not isinstance(data, bytes) or not data or len(data) > 2 * MAX_CERT:
        raise TPMError(f"a certificate is 1 to {MAX_CERT} bytes (DER)")
    try:
        if data.startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        if len(data) >= 4 and data[0] == 0x30 and data[1] == 0x82:
            data = data[:4 + int.from_bytes(data[2:4], "big")]
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise TPMError("not an X.509 certificate") from None


def is_ca(cert):
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _valid_at(cert, now):
    return cert.not_valid_before_utc.timestamp() <= now <= cert.not_valid_after_utc.timestamp()


def verify_ek_chain(ek_cert, intermediates, roots, ek, now):
    """None when `ek_cert` certifies `ek` and chains, through `intermediates`, to one of `roots` (the
    tenant's registered EK CA certificates), every certificate valid at `now`; else the reason
    (ek_mismatch, expired, untrusted)."""
    if ek_cert.public_key().public_numbers() != ek.key.public_numbers():
        return "ek_mismatch"
    if not _valid_at(ek_cert, now):
        return "expired"
    pool = [c for c in intermediates if is_ca(c)]
    cert, depth = ek_cert, 0
    while depth < 4:
        for root in roots:
            if _issued_by(cert, root):
                return None if _valid_at(root, now) else "expired"
        nxt = next((c for c in pool if _issued_by(cert, c)), None)
        if nxt is None:
            return "untrusted"
        if not _valid_at(nxt, now):
            return "expired"
        pool.remove(nxt)
        cert, depth = nxt, depth + 1
    return "untrusted"


def _issued_by(cert, issuer):
    if not is_ca(issuer):
        return False
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


# -- appraisal ------------------------------------------------------------------------------------------

POLICY_ID = "janua:gateway-tpm/1"
TRUST = {"affirming": 100, "warning": 50, "contraindicated": 0, "none": 0}


def appraise(failure, mismatched, has_reference, ek_verified):
    """The AR4SI vector of one quote: failure is verify_quote's reason (None when the quote verified),
    mismatched the PCRs that differ from the model's reference, has_reference whether one is registered,
    ek_verified whether the EK certificate chains to a registered EK CA now. -> (status, vector, trust)."""
    vector = {"hardware": ear.GENUINE_HARDWARE if ek_verified else ear.UNRECOGNIZED_HARDWARE}
    if failure is not None:
        vector["instance-identity"] = ear.UNTRUSTWORTHY_INSTANCE
    else:
        vector["instance-identity"] = ear.TRUSTWORTHY_INSTANCE
        if not has_reference:
            vector["executables"] = ear.UNRECOGNIZED_RUNTIME
        else:
            bad = set(mismatched)
            vector["executables"] = (ear.CONTRAINDICATED_RUNTIME if bad & set(EXECUTABLE_PCRS)
                                     else ear.APPROVED_BOOT)
            vector["configuration"] = (ear.UNSUPPORTABLE_CONFIG if bad & set(CONFIG_PCRS)
                                       else ear.APPROVED_CONFIG)
    status = ear.status_of(vector)
    return status, vector, TRUST[status]
