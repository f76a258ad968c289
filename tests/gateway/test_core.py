"""verifier/gateway/core.py on recorded swtpm data (tests/gateway/vectors.json: what swtpm 0.7.1 and
tpm2-tools 5.4 produced; no TPM needed to run these). Names and qualified names are the TPM's own
(tpm2_createak -n, the quote's qualifiedSigner), written out here."""

import json
import struct
from pathlib import Path

import pytest

from verifier.attest import ear
from verifier.gateway import core

V = json.loads((Path(__file__).parent / "vectors.json").read_text())
EK = bytes.fromhex(V["ek_public"])
RSA, ECC = V["rsa"], V["ecc"]
RSA_SIGNER = "000b75d11710a06d0ab625090ca96101ae64ecbf5eb0c844a087345f730274c68963"
ECC_SIGNER = "000b52685818baaa8cf35578ee02c1caeb4f65238f8e8de62843882889d61fe385ef"
NOW = 1_796_200_000           # after the recorded EK certificate's notBefore (1,796,187,317)


def _b(h):
    return bytes.fromhex(h)


def test_names_are_the_tpms():
    assert core.decode_public(_b(RSA["ak_public"])).name.hex() == RSA["ak_name"]
    assert core.decode_public(_b(ECC["ak_public"])).name.hex() == ECC["ak_name"]


@pytest.mark.parametrize("vec, signer", [(RSA, RSA_SIGNER), (ECC, ECC_SIGNER)])
def test_qualified_name_under_the_ek_is_the_quotes_signer(vec, signer):
    ek, ak = core.decode_public(EK), core.decode_public(_b(vec["ak_public"]))
    assert core.qualified_name_under_ek(ek, ak).hex() == signer


@pytest.mark.parametrize("vec, signer", [(RSA, RSA_SIGNER), (ECC, ECC_SIGNER)])
def test_recorded_quote_verifies(vec, signer):
    ak = core.decode_public(_b(vec["ak_public"]))
    q, failure = core.verify_quote(ak, _b(vec["quote"]), _b(vec["signature"]), _b(vec["pcrs"]), _b(signer))
    assert failure is None
    assert q.extra_data.hex() == vec["nonce"]
    assert q.selection == [(0x000B, b"\xff\x00\x00")]


def _flip(data, i):
    b = bytearray(data)
    b[i] ^= 1
    return bytes(b)


@pytest.mark.parametrize("what, reason", [("pcrs", "pcr_digest"), ("signature", "signature"), ("quote", "signature"),
                                          ("signer", "signer")])
def test_tampered_quote_is_caught(what, reason):
    ak = core.decode_public(_b(RSA["ak_public"]))
    parts = {"quote": _b(RSA["quote"]), "signature": _b(RSA["signature"]), "pcrs": _b(RSA["pcrs"]),
             "signer": _b(RSA_SIGNER)}
    parts[what] = _flip(parts[what], len(parts[what]) - 1)
    _, failure = core.verify_quote(ak, parts["quote"], parts["signature"], parts["pcrs"], parts["signer"])
    assert failure == reason


def test_quote_signed_by_another_ak_fails_its_signature():
    other = core.decode_public(_b(ECC["ak_public"]))
    _, failure = core.verify_quote(other, _b(RSA["quote"]), _b(RSA["signature"]), _b(RSA["pcrs"]), _b(RSA_SIGNER))
    assert failure == "signature"


QUOTE = _b(RSA["quote"])


@pytest.mark.parametrize("data", [
    QUOTE[:-1],                                  # truncated
    QUOTE + b"\x00",                             # trailing byte
    b"\xfe" + QUOTE[1:],                         # not TPM_GENERATED_VALUE
    QUOTE[:4] + b"\x80\x17" + QUOTE[6:],         # TPM_ST_ATTEST_CERTIFY, not a quote
    QUOTE + bytes(2000),                         # over the size cap
    b"",
], ids=["truncated", "trailing", "magic", "type", "oversize", "empty"])
def test_malformed_quote_is_refused_with_tpm_error_not_a_crash(data):
    with pytest.raises(core.TPMError):
        core.decode_quote_unverified(data)


def test_malformed_public_areas_are_refused():
    ak = _b(RSA["ak_public"])
    for bad in (ak[:-1], ak + b"\x00", b"\x00\x02\x00\x08", bytes(2000)):
        with pytest.raises(core.TPMError):
            core.decode_public(bad)


def _with_attributes(public, clear=0, set_=0):
    area = bytearray(public[2:])
    attrs = struct.unpack(">I", area[4:8])[0]
    area[4:8] = struct.pack(">I", (attrs & ~clear) | set_)
    return struct.pack(">H", len(area)) + bytes(area)


@pytest.mark.parametrize("clear, set_", [(core.RESTRICTED, 0), (core.FIXED_TPM, 0), (0, core.DECRYPT),
                                         (core.SENSITIVE_DATA_ORIGIN, 0)],
                         ids=["unrestricted", "not-fixedTPM", "decrypt", "imported"])
def test_key_that_is_not_an_attestation_key_is_refused_as_ak(clear, set_):
    p = core.decode_public(_with_attributes(_b(RSA["ak_public"]), clear, set_))
    with pytest.raises(core.TPMError):
        core.verify_ak_public(p)


def test_ek_is_not_an_ak_and_an_ak_is_not_an_ek():
    with pytest.raises(core.TPMError):
        core.verify_ak_public(core.decode_public(EK))
    with pytest.raises(core.TPMError):
        core.verify_ek_public(core.decode_public(_b(RSA["ak_public"])))
    core.verify_ek_public(core.decode_public(EK))


def test_make_credential_refuses_a_non_ek():
    with pytest.raises(core.TPMError):
        core.make_credential(core.decode_public(_b(RSA["ak_public"])), b"\x00" * 34, b"x" * 32)


def test_make_credential_layout():
    # TPM2B_ID_OBJECT = size || TPM2B_DIGEST(outer HMAC, 32) || AES-CFB(size || credential);
    # TPM2B_ENCRYPTED_SECRET = size || RSA-OAEP ciphertext (256 bytes for RSA 2048)
    blob, secret = core.make_credential(core.decode_public(EK), _b(RSA["ak_name"]), b"c" * 32, rand=lambda n: b"s" * n)
    assert len(blob) == 2 + 2 + 32 + 2 + 32 and blob[:4] == bytes.fromhex("00440020")
    assert len(secret) == 2 + 256 and secret[:2] == bytes.fromhex("0100")


def test_kdfa_labels_end_with_a_zero_byte_and_counter_and_length_are_big_endian():
    # SP 800-108 counter mode as TPM 2.0 Part 1 11.4.10.2 states it, written out with hmac by hand
    import hashlib
    import hmac
    key, u = b"k" * 32, b"u" * 34
    first = hmac.new(key, b"\x00\x00\x00\x01" + b"STORAGE\x00" + u + b"\x00\x00\x01\x00", hashlib.sha256).digest()
    assert core.kdfa(key, b"STORAGE", u, b"", 256) == first
    assert core.kdfa(key, b"STORAGE", u, b"", 128) == hmac.new(key, b"\x00\x00\x00\x01STORAGE\x00" + u
                                                              + b"\x00\x00\x00\x80", hashlib.sha256).digest()[:16]
    assert core.kdfa(key, b"STORAGE", u, b"", 512) == hmac.new(
        key, b"\x00\x00\x00\x01STORAGE\x00" + u + b"\x00\x00\x02\x00", hashlib.sha256).digest() + hmac.new(
        key, b"\x00\x00\x00\x02STORAGE\x00" + u + b"\x00\x00\x02\x00", hashlib.sha256).digest()


def _certs():
    return (core.load_cert(_b(V["ek_cert"])), core.load_cert(_b(V["ek_issuer"])), core.load_cert(_b(V["ek_root"])))


def test_ek_chain_verifies_to_the_registered_root_through_the_intermediate():
    cert, issuer, root = _certs()
    ek = core.decode_public(EK)
    assert core.verify_ek_chain(cert, [issuer], [root], ek, NOW) is None
    assert core.verify_ek_chain(cert, [], [root], ek, NOW) == "untrusted"
    assert core.verify_ek_chain(cert, [issuer], [], ek, NOW) == "untrusted"
    assert core.verify_ek_chain(cert, [issuer], [root], ek, 1_796_187_316) == "expired"   # before notBefore


def test_ek_certificate_of_another_key_is_refused():
    cert, issuer, root = _certs()
    # the recorded RSA AK as "EK": the certificate does not certify it
    assert core.verify_ek_chain(cert, [issuer], [root], core.decode_public(_b(RSA["ak_public"])), NOW) == "ek_mismatch"


def test_end_entity_certificate_cannot_serve_as_an_intermediate():
    cert, issuer, root = _certs()
    # the EK certificate is not a CA: listing it as an intermediate or root does not make anything chain
    assert core.verify_ek_chain(cert, [cert], [cert], core.decode_public(EK), NOW) == "untrusted"


def test_nv_padding_after_the_der_is_cut():
    assert core.load_cert(_b(V["ek_cert"]) + bytes(40)).serial_number == core.load_cert(_b(V["ek_cert"])).serial_number


@pytest.mark.parametrize("failure, mismatched, has_ref, ek_ok, status, vector, trust", [
    (None, [], True, True, "affirming",
     {"hardware": 2, "instance-identity": 2, "executables": 3, "configuration": 2}, 100),
    (None, [7], True, True, "contraindicated",
     {"hardware": 2, "instance-identity": 2, "executables": 3, "configuration": 96}, 0),
    (None, [4], True, True, "contraindicated",
     {"hardware": 2, "instance-identity": 2, "executables": 96, "configuration": 2}, 0),
    (None, [], False, True, "warning", {"hardware": 2, "instance-identity": 2, "executables": 33}, 50),
    (None, [], True, False, "contraindicated",
     {"hardware": 97, "instance-identity": 2, "executables": 3, "configuration": 2}, 0),
    ("signature", [], True, True, "contraindicated", {"hardware": 2, "instance-identity": 96}, 0),
])
def test_appraisal_table(failure, mismatched, has_ref, ek_ok, status, vector, trust):
    assert core.appraise(failure, mismatched, has_ref, ek_ok) == (status, vector, trust)
    assert ear.status_of(vector) == status


def test_compare_pcrs_names_only_what_differs_and_what_the_reference_lists():
    values = [bytes([i]) * 32 for i in range(8)]
    assert core.compare_pcrs(values, {0: bytes([0]) * 32, 7: bytes([9]) * 32}) == [7]
    assert core.compare_pcrs(values, {}) == []


@pytest.mark.parametrize("exponent", [2, 1, 0x10000])
def test_an_rsa_public_area_with_an_invalid_exponent_is_a_tpm_error_not_a_crash(exponent):
    # found by the tpm fuzz target: cryptography's ValueError ("e must be odd") escaped decode_public
    at = EK.find(b"\x08\x00\x00\x00\x00\x00\x01\x00")     # keyBits 2048, exponent 0 (= 65537), unique size 256
    assert at == 52
    bad = EK[:at + 2] + struct.pack(">I", exponent) + EK[at + 6:]
    with pytest.raises(core.TPMError, match="RSA public key is not valid"):
        core.decode_public(bad)
