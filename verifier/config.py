"""Verifier configuration and KEK loading.

The KEK comes from the environment (JANUA_KEK, 64 hex characters) or a file (kek_file, 32 raw bytes
or 64 hex characters), never from the database. Without a KEK the verifier refuses to start, unless
dev=True, which generates a key file beside the database (mode 0600) and logs a warning. Older KEKs
(during and after an interrupted KEK rotation, docs/api.md "KEK rotation") come from $JANUA_KEK_OLD
(64 hex characters each, separated by commas or spaces) and old_kek_files; they only open sealed values.
"""

import dataclasses
import logging
import os
import time
import urllib.parse
from pathlib import Path
from typing import Callable, Optional

from verifier import secretfile
from verifier.errors import ConfigError
from verifier.keys import KEK_LEN, Sealer

log = logging.getLogger("janua.verifier")

KEK_ENV = "JANUA_KEK"
KEK_OLD_ENV = "JANUA_KEK_OLD"


def is_http_url(url):
    """Whether `url` is an http:// or https:// URL with a host (and, if it has one, a port in 0-65535),
    without whitespace or control characters: the shape of EdgeConfig.upstream, and of the host tools'
    --server (tools/api.py check_url)."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port                      # ValueError for a port that is not a number in 0-65535
    except ValueError:
        return False
    return (parts.scheme in ("http", "https") and bool(parts.hostname)
            and not any(c.isspace() or ord(c) < 32 for c in url))


@dataclasses.dataclass
class EdgeConfig:
    """An edge verifier (verifier/edge*.py, docs/tokens.md "Edge verifier"): what it needs of its upstream."""

    upstream: str                        # the cloud verifier's base URL, e.g. https://janua.example.com
    token: str = dataclasses.field(repr=False)   # a tenant token of the upstream, role edge (it serves that tenant)
    max_offline_s: int = 7 * 86400       # past this long without a successful sync, refuse everything
    sync_interval_s: int = 3600
    cache_size: int = 10_000
    cache_ttl_s: int = 3600              # an entry older than this is re-fetched when the upstream answers
    # the outbox of health reports for the upstream (docs/tokens.md "Edge verifier"): past either bound the
    # oldest undelivered reports are dropped
    health_outbox_max: int = 100_000
    health_outbox_bytes: int = 16 << 20
    # TPM attestation of this gateway (verifier/edge/attestor.py, docs/attestation.md section 6); None: off
    tpm: Optional[str] = None            # a tpm2-tools TCTI, e.g. device:/dev/tpmrm0
    gateway_name: Optional[str] = None   # for the first enrolment
    gateway_model: Optional[str] = None
    gateway_state: str = "janua-gateway.json"   # the enrolled gateway's id
    ek_chain: tuple = ()                 # DER intermediates between the EK certificate and the tenant's EK CA


@dataclasses.dataclass
class Config:
    db_path: str = "janua.db"            # a SQLite file, or a postgresql:// URL (verifier.store.open_storage)
    # Where a verifier on PostgreSQL keeps the files a SQLite verifier keeps beside its file (the dev KEK and token,
    # a self-signed certificate, the temporary files of release uploads; the releases themselves are in the
    # database): <state_dir>/janua.*; default the current folder.
    state_dir: Optional[str] = None
    kek: Optional[bytes] = None          # explicit key (tests, embedding); wins over env and file
    kek_file: Optional[str] = None
    old_keks: tuple = ()                 # explicit older KEKs (tests, embedding); added to env and files
    old_kek_files: tuple = ()
    dev: bool = False
    http_host: str = "127.0.0.1"
    http_port: int = 8080                # 0: any free port
    udp_host: str = "127.0.0.1"
    udp_port: Optional[int] = 5685       # 0: any free port; None: no UDP endpoint
    dtls_host: str = "127.0.0.1"
    dtls_port: Optional[int] = 5684      # coaps; 0: any free port; None: no DTLS endpoint
    # Claims over plain CoAP (verifier/claims/coap.py, docs/claims.md 13): POST /claim on this UDP port; 0: any free
    # port; None (the default): off.
    coap_claim_host: str = "127.0.0.1"
    coap_claim_port: Optional[int] = None
    # HTTPS (verifier/web/tls.py, docs/api.md "TLS"): a PEM certificate chain and its key (mode 0600);
    # both None: plain HTTP, which only a loopback http_host may serve unless insecure_http.
    tls_cert: Optional[str] = None
    tls_key: Optional[str] = None
    insecure_http: bool = False
    # Reverse proxies (ip_network objects, verifier/web/source.py) whose X-Forwarded-For is believed.
    trusted_proxies: tuple = ()
    log_level: str = "INFO"
    clock: Callable[[], float] = time.time   # injected time; tests pass a fake
    # Pre-lookup limit per source address (protocol step 2), verifier-wide because the tenant is not
    # known yet. Tenant policies add their own per-source limit after the lookup.
    source_capacity: float = 1000.0
    source_refill_per_s: float = 500.0
    # Binary auth's device cache (verifier/binauth/cache.py): at most this many devices' derived keys and
    # replay state in memory (about 550 bytes each); past it the least recently used clean entry goes and is
    # read again from the registry on its next packet (an unseal and a key derivation).
    auth_cache_devices: int = 200_000
    # Signed OTA: release files live on disk under release_dir (default: <db_path>.releases/; on PostgreSQL they are
    # in the database and only uploads in progress are here), content-addressed by SHA-256; an upload over
    # release_max_bytes is refused.
    release_dir: Optional[str] = None
    release_max_bytes: int = 8 * 1024 * 1024
    # Audit trail (verifier/registry/audit.py): refusals of unauthenticated requests are summarised, one row per
    # key per audit_summary_s; expired rows are pruned every audit_prune_s. Tenants set their own
    # retention in their policy; rows with no tenant (unknown devices) have these verifier-wide bounds.
    audit_summary_s: int = 60
    audit_prune_s: int = 300
    audit_untenanted_max_age_days: int = 90
    audit_untenanted_max_rows: int = 100_000
    # Notifications (verifier/notify/delivery.py, docs/api.md "Notifications"): the webhook delivery task
    # runs a pass every notify_tick_s (None: no task; tests drive Deliverer.run_once), each attempt at
    # most notify_timeout_s.
    notify_tick_s: Optional[float] = 1.0
    notify_timeout_s: float = 5.0
    # Whether webhooks may reach loopback, private and link-local addresses (a lab's receiver); None: only
    # with dev. Off, a tenant admin cannot point the verifier at internal services.
    notify_private_targets: Optional[bool] = None
    # Claims (verifier/claims, docs/claims.md): the per-batch token bucket of POST /v1/claim (after the tag; the
    # per-source one is source_capacity/source_refill_per_s) and the pre-claim hook's timeout (its targets follow
    # notify_private_targets, as webhooks do).
    claim_batch_capacity: float = 200.0
    claim_batch_refill_per_s: float = 100.0
    claim_hook_timeout_s: float = 2.0
    # Edge mode (janua serve --edge): create_app builds an edge verifier; db_path is the edge's own file.
    edge: Optional[EdgeConfig] = None

    def files_base(self):
        """The path the verifier's own files are named after: the SQLite file, or <state_dir>/janua on PostgreSQL."""
        from verifier.dburl import is_database_url
        if is_database_url(self.db_path):
            return str(Path(self.state_dir or ".") / "janua")
        return str(self.db_path)

    def release_path(self):
        return Path(self.release_dir) if self.release_dir else Path(self.files_base() + ".releases")

    def kek_path_for_dev(self):
        return Path(self.files_base() + ".kek")


def _parse_kek(raw, where):
    if isinstance(raw, bytes) and len(raw) == KEK_LEN:
        return raw                      # raw bytes as they are: a key may begin or end with a whitespace byte
    raw = raw.strip() if isinstance(raw, (bytes, str)) else raw
    if isinstance(raw, bytes) and len(raw) == KEK_LEN:
        return raw
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEK_LEN:
        raise ConfigError(f"the KEK from {where} must be {KEK_LEN} bytes (64 hex characters)")
    return key


def read_kek_file(path):
    """The KEK in the file at `path` (32 raw bytes or 64 hex characters); ConfigError if unreadable or malformed."""
    try:
        return _parse_kek(Path(path).read_bytes(), str(path))
    except OSError as e:
        raise ConfigError(f"cannot read KEK file {path}: {e.strerror}") from e


def load_old_keks(config):
    """The older KEKs of `config` (unseal only): Config.old_keks, then $JANUA_KEK_OLD, then old_kek_files."""
    out = [_parse_kek(k, "Config.old_keks") for k in config.old_keks]
    env = os.environ.get(KEK_OLD_ENV, "")
    out += [_parse_kek(k, f"${KEK_OLD_ENV}") for k in env.replace(",", " ").split()]
    out += [read_kek_file(p) for p in config.old_kek_files]
    return out


def make_sealer(config):
    """The Sealer of `config`: seals with load_kek(config), also opens with load_old_keks(config)."""
    kek = load_kek(config)
    return Sealer(kek, [k for k in load_old_keks(config) if k != kek])


def load_kek(config):
    """Return the 32-byte KEK for `config`, creating a dev key file if allowed."""
    if config.kek is not None:
        return _parse_kek(config.kek, "Config.kek")
    env = os.environ.get(KEK_ENV)
    if env:
        return _parse_kek(env, f"${KEK_ENV}")
    if config.kek_file:
        return read_kek_file(config.kek_file)
    if config.dev:
        path = config.kek_path_for_dev()
        if path.exists():
            return _parse_kek(path.read_bytes(), str(path))
        key = os.urandom(KEK_LEN)
        # new, 0600 and fsynced with its directory: losing it to a power cut would lose every sealed secret
        secretfile.write_new(path, (key.hex() + "\n").encode())
        log.warning("dev mode: generated a KEK in %s; keep it with the database, and use $%s or "
                    "--kek-file in production", path, KEK_ENV)
        return key
    raise ConfigError(f"no key-encryption key: set ${KEK_ENV} (64 hex characters) or pass a KEK file "
                      f"(--kek-file); --dev generates one for local use")
