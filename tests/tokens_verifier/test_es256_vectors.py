"""ES256 over raw r||s (the signature of chain tokens and device JWTs, docs/tokens.md 2-3) against the
published vectors in docs/vectors/ecdsa_p256.json: valid signatures verify, the mutated ones do not."""

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from verifier.tokens.chain import es256_verify

VECTORS = json.loads((Path(__file__).resolve().parents[2] / "docs" / "vectors" / "ecdsa_p256.json").read_text())


def test_vector_file_holds_both_valid_and_invalid_signatures():
    assert len(VECTORS) == 18
    assert sorted({v["ok"] for v in VECTORS}) == [False, True]


@pytest.mark.parametrize("i", range(len(VECTORS)))
def test_es256_verify_agrees_with_the_published_vector(i):
    v = VECTORS[i]
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes.fromhex(v["pub"]))
    assert es256_verify(key, bytes.fromhex(v["sig"]), bytes.fromhex(v["msg"])) is v["ok"]
