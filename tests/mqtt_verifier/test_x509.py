"""verifier/mqtt/x509.py and the certificate admin routes: subjects, validity, key forms, the sealed CA key, CRLs."""

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_der_private_key

from verifier import keys
from verifier.mqtt import x509 as vx
from verifier.appkeys import SEALER, STORAGE
from verifier.errors import CryptoError


async def test_issue_certificate_shape_and_registry(client, acme, clock):
    dev = acme.device(clock)
    r = await client.post(f"/v1/devices/{dev.hex}/certificate", headers=acme.headers)
    assert r.status == 201 and r.headers["Cache-Control"] == "no-store"
    doc = await r.json()
    cert = x509.load_der_x509_certificate(base64.b64decode(doc["certificate_der"]))
    ca = x509.load_der_x509_certificate(base64.b64decode(doc["ca_der"]))
    key = load_der_private_key(base64.b64decode(doc["key_der"]), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert cert.subject.rfc4514_string() == f"O=acme,CN={dev.hex}"
    assert ca.subject.rfc4514_string() == "O=acme,CN=janua acme CA" and cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)
    assert doc["not_after"] - int(clock()) == 365 * 86400
    assert doc["fingerprint"] == vx.fingerprint(base64.b64decode(doc["certificate_der"]))
    assert doc["serial"] == format(cert.serial_number, "x")
    assert doc["not_before"] < doc["next_key_rotation"] < doc["not_after"]
    assert doc["topic_prefix"] == dev.prefix
    r = await client.get(f"/v1/devices/{dev.hex}/certificate", headers=acme.headers)
    got = await r.json()
    assert got["current"]["fingerprint"] == doc["fingerprint"] and got["current"]["revoked_at"] is None


async def test_rsa2048_option(client, acme, clock):
    dev = acme.device(clock)
    r = await client.post(f"/v1/devices/{dev.hex}/certificate", json={"key_type": "rsa2048", "days": 30},
                          headers=acme.headers)
    doc = await r.json()
    key = load_der_private_key(base64.b64decode(doc["key_der"]), None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert doc["not_after"] - int(clock()) == 30 * 86400


@pytest.mark.parametrize("body", [{"key_type": "p384"}, {"days": 0}, {"days": 4000}, {"days": "365"},
                                  {"extra": 1}])
async def test_issue_rejects_bad_requests(client, acme, clock, body):
    dev = acme.device(clock)
    r = await client.post(f"/v1/devices/{dev.hex}/certificate", json=body, headers=acme.headers)
    assert r.status == 400


async def test_tenant_cannot_issue_for_another_tenants_device(client, acme, other, clock):
    dev = other.device(clock)
    r = await client.post(f"/v1/devices/{dev.hex}/certificate", headers=acme.headers)
    assert r.status == 404


async def test_ca_key_is_sealed_and_bound_to_its_tenant(client, acme, other, clock):
    app = client.server.app
    await client.post(f"/v1/devices/{acme.device(clock).hex}/certificate", headers=acme.headers)
    row = app[STORAGE].get_ca(acme.id)
    assert b"PRIVATE" not in row["sealed_key"]
    with pytest.raises(CryptoError):                      # cannot be moved to another tenant's row
        app[SEALER].unseal(row["sealed_key"], vx.CA_SEAL_ID, other.id)
    with pytest.raises(CryptoError):                      # nor opened with another KEK
        keys.Sealer(bytes(32)).unseal(row["sealed_key"], vx.CA_SEAL_ID, acme.id)


async def test_revocation_lists_the_serial_in_a_fresh_signed_crl(client, acme, clock):
    dev = acme.device(clock)
    doc = await (await client.post(f"/v1/devices/{dev.hex}/certificate", headers=acme.headers)).json()
    r1 = await client.get("/v1/ca", headers=acme.headers)
    ca_doc = await r1.json()
    ca = x509.load_pem_x509_certificate(ca_doc["ca_pem"].encode())
    crl0 = x509.load_pem_x509_crl(ca_doc["crl_pem"].encode())
    assert len(crl0) == 0 and crl0.is_signature_valid(ca.public_key())
    r = await client.post(f"/v1/devices/{dev.hex}/certificate/revoke", json={"reason": "key_compromise"},
                          headers=acme.headers)
    assert r.status == 200
    crl = x509.load_pem_x509_crl(await (await client.get("/v1/ca/crl", headers=acme.headers)).read())
    assert crl.is_signature_valid(ca.public_key())
    entry = crl.get_revoked_certificate_by_serial_number(int(doc["serial"], 16))
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise
    num = lambda c: c.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert num(crl) > num(crl0)
    r = await client.post(f"/v1/devices/{dev.hex}/certificate/revoke", headers=acme.headers)
    assert r.status == 404                                # nothing left to revoke


async def test_no_certificate_for_a_suspended_device(client, acme, clock):
    dev = acme.device(clock)
    await client.post(f"/v1/devices/{dev.hex}/lifecycle", json={"action": "suspend"}, headers=acme.headers)
    r = await client.post(f"/v1/devices/{dev.hex}/certificate", headers=acme.headers)
    assert r.status == 409


def test_crl_hold_entries_and_next_update():
    ca, key = vx.create_ca("t", 1_800_000_000)
    crl = vx.build_crl(ca, key, [(5, 1_800_000_100, "certificate_hold"), (6, 1_800_000_100, "unspecified")],
                       1_800_000_200, 3)
    assert crl.next_update_utc.timestamp() == 1_800_000_200 + vx.CRL_NEXT_UPDATE_S
    hold = crl.get_revoked_certificate_by_serial_number(5)
    assert hold.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.certificate_hold
    assert not crl.get_revoked_certificate_by_serial_number(6).extensions
