"""X.509 for device identities (docs/mqtt.md section 1): the per-tenant CA, device and broker certificates,
CRLs and fingerprints, on the `cryptography` package.

Pure functions over keys, certificates and `now` (unix seconds), plus `TenantCA`, which loads (or creates
and stores) a tenant's CA with its private key sealed under the verifier's KEK. No HTTP, no broker files.
Device key pairs are generated here, on the verifier: stock MicroPython has no asymmetric key generation.
"""

import base64
import datetime
import hashlib
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from verifier.errors import NotFound, ValidationError

CA_DAYS = 3650
DEVICE_DAYS = 365
MAX_DEVICE_DAYS = 3650
BROKER_DAYS = 825
KEY_TYPES = ("p256", "rsa2048")
CA_SEAL_ID = b"x509-ca\0"          # the "device id" in the CA key's sealing AAD (8 bytes, never a device id)
CRL_NEXT_UPDATE_S = 7 * 86400
_BACKDATE_S = 300                   # not_before is a little in the past: boards' clocks lag
_SHA256 = hashes.SHA256()
_P256 = ec.SECP256R1()


def _dt(ts):
    return datetime.datetime.fromtimestamp(int(ts), datetime.timezone.utc)


def _ts(dt):
    return int(dt.timestamp())


def new_key(key_type="p256"):
    if key_type == "p256":
        return ec.generate_private_key(_P256)
    if key_type == "rsa2048":
        return rsa.generate_private_key(65537, 2048)
    raise ValidationError(f"key_type must be one of {', '.join(KEY_TYPES)}")


def key_der(key):
    """The private key as MicroPython's `tls` (mbedTLS pk_parse_key) loads it: SEC1 DER for EC, PKCS#1 for RSA."""
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def cert_der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def b64(data):
    return base64.b64encode(data).decode()


def fingerprint(cert_or_der):
    """SHA-256 of the DER certificate, lowercase hex."""
    der = cert_or_der if isinstance(cert_or_der, bytes) else cert_der(cert_or_der)
    return hashlib.sha256(der).hexdigest()


def _serial():
    # 16 random bytes, top bit cleared: positive and well under RFC 5280's 20-octet limit
    return int.from_bytes(os.urandom(16), "big") >> 1 or 1


def serial_hex(n):
    return format(n, "x")


def create_ca(tenant_name, now, days=CA_DAYS):
    """A self-signed ECDSA P-256 CA: CN="janua <tenant> CA", O=<tenant>, 10 years. Returns (cert, key)."""
    key = ec.generate_private_key(_P256)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"janua {tenant_name} CA"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, tenant_name)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(_serial()).not_valid_before(_dt(now - _BACKDATE_S)).not_valid_after(_dt(now + days * 86400))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, _SHA256))
    return cert, key


_DEVICE_KU = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                           data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                           encipher_only=False, decipher_only=False)
_RSA_KU = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                        encipher_only=False, decipher_only=False)
_NOT_CA = x509.BasicConstraints(ca=False, path_length=None)


def issue_device(ca_cert, ca_key, device_id_hex, tenant_name, now, days=DEVICE_DAYS, key_type="p256",
                 not_after=None):
    """A device certificate CN=<device id hex>, O=<tenant>, signed by the tenant CA. Returns (cert, key).
    `not_after` (unix seconds) overrides `days` (tests issue already-expired certificates with it)."""
    key = new_key(key_type)
    end = now + days * 86400 if not_after is None else not_after
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id_hex),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, tenant_name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(_serial())
            .not_valid_before(_dt(min(now - _BACKDATE_S, end - 1))).not_valid_after(_dt(end))
            .add_extension(_NOT_CA, critical=True)
            .add_extension(_DEVICE_KU if key_type == "p256" else _RSA_KU, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, _SHA256))
    return cert, key


def issue_broker(ca_cert, ca_key, now, hosts=("localhost", "127.0.0.1"), days=BROKER_DAYS):
    """The broker's server certificate for one tenant's listener (SAN: the hosts). Returns (cert, key)."""
    key = ec.generate_private_key(_P256)
    sans = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(_serial())
            .not_valid_before(_dt(now - _BACKDATE_S)).not_valid_after(_dt(now + days * 86400))
            .add_extension(_NOT_CA, critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, _SHA256))
    return cert, key


def build_crl(ca_cert, ca_key, entries, now, number, next_update_s=CRL_NEXT_UPDATE_S):
    """A CRL signed by the CA. entries: [(serial int, revoked_at, reason)] with reason a x509.ReasonFlags
    name ("unspecified", "cessation_of_operation", "certificate_hold", ...)."""
    b = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
         .last_update(_dt(now - _BACKDATE_S)).next_update(_dt(now + next_update_s))
         .add_extension(x509.CRLNumber(number), critical=False))
    for serial, revoked_at, reason in entries:
        rb = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(_dt(revoked_at))
        if reason and reason != "unspecified":
            rb = rb.add_extension(x509.CRLReason(x509.ReasonFlags[reason]), critical=False)
        b = b.add_revoked_certificate(rb.build())
    return b.sign(ca_key, _SHA256)


def crl_pem(crl):
    return crl.public_bytes(serialization.Encoding.PEM)


def next_key_rotation(not_before, not_after):
    """When the device should get a new key pair: after 80 % of its certificate's lifetime."""
    return not_before + (not_after - not_before) * 4 // 5


def describe(cert):
    """The registry fields of a certificate."""
    nb, na = _ts(cert.not_valid_before_utc), _ts(cert.not_valid_after_utc)
    return {"serial": serial_hex(cert.serial_number), "fingerprint": fingerprint(cert), "not_before": nb,
            "not_after": na, "next_key_rotation": next_key_rotation(nb, na)}


class TenantCA:
    """A tenant's CA, loaded from storage (its key unsealed with the Sealer), created on first use."""

    def __init__(self, tenant, cert, key):
        self.tenant, self.cert, self.key = tenant, cert, key

    @classmethod
    def load(cls, storage, sealer, tenant, now=None):
        """The tenant's CA; with `now`, create it when the tenant has none yet (else NotFound)."""
        row = storage.get_ca(tenant["id"])
        if row is None:
            if now is None:
                raise NotFound("this tenant has no CA yet (issue a certificate first)")
            cert, key = create_ca(tenant["name"], now)
            sealed = sealer.seal(key_der(key), CA_SEAL_ID, tenant["id"])
            storage.put_ca(tenant["id"], cert_der(cert), sealed, int(now))
            row = storage.get_ca(tenant["id"])      # a concurrent creator may have won: use the stored one
        cert = x509.load_der_x509_certificate(row["cert_der"])
        key = serialization.load_der_private_key(sealer.unseal(row["sealed_key"], CA_SEAL_ID, tenant["id"]), None)
        return cls(tenant, cert, key)

    def crl(self, storage, now):
        """A fresh CRL of every revoked (or held) certificate of the tenant that has not expired yet."""
        entries = [(int(r["serial"], 16), r["revoked_at"], r["reason"])
                   for r in storage.list_revoked_certificates(self.tenant["id"], int(now))]
        return build_crl(self.cert, self.key, entries, int(now), storage.next_crl_number(self.tenant["id"]))
