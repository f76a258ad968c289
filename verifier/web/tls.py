"""TLS on the verifier's HTTP API (docs/api.md "TLS"): the server's SSL context, the key file's permission
check, which bind addresses may serve plain HTTP, and the self-signed certificate of `janua serve --dev
--tls-self-signed`."""

import datetime
import ipaddress
import logging
import os
import socket
import ssl
import stat
from pathlib import Path

from verifier import secretfile
from verifier.errors import ConfigError

log = logging.getLogger("janua.verifier")

SELF_SIGNED_DAYS = 365


def is_loopback(host):
    """Whether binding `host` reaches only this machine: 127.0.0.0/8, ::1 or the name localhost. Anything
    else (0.0.0.0, ::, an interface address, another name) may be reached from the network."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_key_mode(path):
    """ConfigError unless the private key file `path` exists and only its owner may read or write it."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise ConfigError(f"cannot read the TLS key {path}: {e.strerror}") from None
    if mode & 0o077:
        raise ConfigError(f"the TLS key {path} is accessible by group or others (mode "
                          f"{stat.S_IMODE(mode):04o}); chmod 600 {path}")


def server_context(cert_file, key_file):
    """The SSL context of the HTTPS listener: TLS 1.2 or newer, Python's secure defaults (its cipher list,
    no compression, no renegotiation), the certificate chain `cert_file` and the key `key_file` (whose
    mode is checked first). ConfigError with a one-line reason if the files do not make a usable pair."""
    check_key_mode(key_file)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    try:
        ctx.load_cert_chain(cert_file, key_file)
    except OSError as e:
        if isinstance(e, ssl.SSLError):
            raise ConfigError(f"cannot use the TLS certificate {cert_file} with the key {key_file}: "
                              f"{e.reason or e}") from None
        raise ConfigError(f"cannot read {e.filename or cert_file}: {e.strerror}") from None
    return ctx


def check_exposure(config):
    """ConfigError if `config` would serve plain HTTP on an address other than loopback without
    insecure_http; the one warning line if it does with it. Returns the SSL context (or None: plain HTTP)."""
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ConfigError("TLS needs both a certificate and its key (--tls-cert FILE --tls-key FILE)")
    if config.tls_cert is not None:
        return server_context(config.tls_cert, config.tls_key)
    if not is_loopback(config.http_host):
        if not config.insecure_http:
            raise ConfigError(f"refusing plain HTTP on {config.http_host}, which is not a loopback address: "
                              f"give --tls-cert/--tls-key (or --dev --tls-self-signed), or --insecure-http")
        log.warning("plain HTTP on %s (--insecure-http): admin tokens and device secrets cross the network "
                    "in clear", config.http_host)
    return None


def self_signed_paths(db_path):
    return Path(str(db_path) + ".tls.pem"), Path(str(db_path) + ".tls.key")


def ensure_self_signed(db_path, host, now=None):
    """The dev certificate beside the database: <db>.tls.pem and <db>.tls.key (0600), a P-256 key and a
    self-signed certificate for localhost, 127.0.0.1, ::1 and `host` (this machine's name when `host` is
    a wildcard address). Files already there are reused, never overwritten; returns (cert, key, created)."""
    cert_path, key_path = self_signed_paths(db_path)
    have = cert_path.exists(), key_path.exists()
    if all(have):
        return cert_path, key_path, False
    if any(have):
        present, missing = (cert_path, key_path) if have[0] else (key_path, cert_path)
        raise ConfigError(f"{present} exists but {missing} does not: remove {present} to make a new pair")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost")]
    ips = {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        addr = None
    if addr is None:
        if host.lower() != "localhost":
            names.append(x509.DNSName(host))
    elif addr.is_unspecified:
        own = socket.gethostname()
        if own and own.lower() != "localhost":
            names.append(x509.DNSName(own))
    else:
        ips.add(addr)
    sans = names + [x509.IPAddress(a) for a in sorted(ips, key=lambda a: (a.version, int(a)))]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "janua dev verifier")])
    start = now or datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start - datetime.timedelta(minutes=5))
            .not_valid_after(start + datetime.timedelta(days=SELF_SIGNED_DAYS))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    try:
        secretfile.write_new(key_path, key_pem)          # 0600, fsynced; refuses to replace a file
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    except OSError as e:
        raise ConfigError(f"cannot write the dev TLS files {cert_path}, {key_path}: {e.strerror}") from None
    return cert_path, key_path, True
