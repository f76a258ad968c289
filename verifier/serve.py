"""`janua serve` and `python -m verifier`: run the verifier (HTTP admin API, binary auth over HTTP and UDP, DTLS/CoAP) in one
process.

Once listening it prints one machine-readable line to stdout:
    janua serve: http=127.0.0.1:8080 udp=127.0.0.1:5685 dtls=127.0.0.1:5684
which goes on with ` tls=on` when the HTTP API is HTTPS (--tls-cert/--tls-key, or --dev --tls-self-signed,
whose files are named first: `janua serve: tls-cert=<db>.tls.pem tls-key=<db>.tls.key self-signed created`),
and then with ` coap-claim=HOST:PORT` when --coap-claim-port serves claims over plain CoAP (docs/claims.md 13).
Plain HTTP is refused on a non-loopback --http-host unless --insecure-http.
With --dev it also generates a KEK file beside the database, creates a tenant "default" if there is
none, and prints its admin token once (`janua serve: token=jna_... tenant=default file=...`).

With --edge it runs an edge verifier instead (docs/tokens.md "Edge verifier"): binary auth and offline
chain tokens from a cache of the upstream's devices, its own SQLite file (--db, default janua-edge.db)
and KEK, no registry and no DTLS; its line ends with `edge upstream=URL`.

Either way it holds the writer lock `<db>.lock` while it runs (verifier/store_lock.py): a second verifier
on the same file refuses to start, naming the pid that holds it.
"""

import argparse
import asyncio
import logging
import signal
import sys
import time
from pathlib import Path



class ServeError(Exception):
    """A failure the user can act on (bad options, no KEK, ports in use): the janua CLI prints it as
    `janua: message` (plus the hint), exit code 1; tools/serve.py maps it to the CLI's error."""

    def __init__(self, message, hint=None):
        super().__init__(message)
        self.hint = hint


class _DefaultsFormatter(argparse.HelpFormatter):
    # `janua serve --help` shows each option's default where it has one worth showing
    def _get_help_string(self, action):
        h = action.help or ""
        d = action.default
        if "default" in h or d in (None, False, [], argparse.SUPPRESS) or not action.option_strings:
            return h
        return h + " (default: %(default)s)"


# settings a config file may not hold (secrets come from the environment or files: JANUA_KEK, --kek-file,
# --upstream-token-file), and the options that are about the file itself
_NOT_IN_FILE = {"help", "config", "print_config", "version"}


def configure(parser):
    parser.formatter_class = _DefaultsFormatter
    parser.set_defaults(_serve_parser=parser)
    parser.add_argument("--config", metavar="FILE",
                        help="TOML file of settings: the options below without their leading -- (http_port = 8443, "
                             "tls_cert = \"/etc/janua/cert.pem\", trusted_proxy = [\"10.0.0.5\"]); options given on "
                             "the command line win. No secrets in it: the KEK comes from $JANUA_KEK or --kek-file")
    parser.add_argument("--print-config", action="store_true",
                        help="print the effective settings (file, then command line, then defaults) as TOML and exit")
    parser.add_argument("--db", default=None,
                        help="the registry: a SQLite file, or a PostgreSQL URL postgresql://USER@HOST:PORT/DB (several "
                             "verifiers may share one; password from $PGPASSWORD or ~/.pgpass) (default: janua.db; the "
                             "edge's own file with --edge: janua-edge.db)")
    parser.add_argument("--state-dir", default=None,
                        help="with a PostgreSQL --db: the folder of this verifier's own files (dev KEK and token, "
                             "self-signed certificate, release uploads in progress), named janua.* "
                             "(default: the current folder)")
    parser.add_argument("--http-host", default="127.0.0.1",
                        help="address of the HTTP API (default 127.0.0.1); plain HTTP only on loopback "
                             "(127.0.0.0/8, ::1, localhost) unless --insecure-http")
    parser.add_argument("--http-port", type=int, default=8080, help="HTTP API port; 0 picks a free port")
    tls = parser.add_argument_group("TLS on the HTTP API (docs/api.md \"TLS\")")
    tls.add_argument("--tls-cert", metavar="FILE",
                     help="PEM certificate chain (server certificate first): serve HTTPS, TLS 1.2 or newer")
    tls.add_argument("--tls-key", metavar="FILE",
                     help="PEM private key of --tls-cert; refused if group or others may read it (chmod 600)")
    tls.add_argument("--tls-self-signed", action="store_true",
                     help="with --dev: HTTPS with a self-signed P-256 certificate for localhost, 127.0.0.1 "
                          "and --http-host, kept beside the db as <db>.tls.pem and <db>.tls.key (reused)")
    tls.add_argument("--insecure-http", action="store_true",
                     help="allow plain HTTP on a non-loopback --http-host: admin tokens and device secrets "
                          "then cross the network in clear")
    tls.add_argument("--trusted-proxy", metavar="CIDR", action="append", default=[],
                     help="a reverse proxy whose X-Forwarded-For is believed (repeatable); the header of any "
                          "other peer is ignored")
    parser.add_argument("--udp-host", default="127.0.0.1", help="address of binary auth over UDP")
    parser.add_argument("--udp-port", type=int, default=5685, help="0 picks a free port; -1 disables UDP")
    parser.add_argument("--dtls-host", default="127.0.0.1", help="address of DTLS/CoAP")
    parser.add_argument("--dtls-port", type=int, default=5684,
                        help="DTLS/CoAP (coaps) port; 0 picks a free port; -1 disables DTLS")
    parser.add_argument("--coap-claim-port", type=int, default=-1,
                        help="claims over plain CoAP (POST /claim, docs/claims.md 13) on this UDP port; 0 picks a "
                             "free port; -1 (the default) disables it")
    parser.add_argument("--coap-claim-host", default="127.0.0.1", help="address of claims over CoAP")
    parser.add_argument("--kek-file", help="key-encryption key file (32 bytes as 64 hex characters); "
                                           "or set $JANUA_KEK")
    parser.add_argument("--old-kek-file", metavar="FILE", action="append", default=None,
                        help="an earlier key-encryption key that still opens sealed values (repeatable; or "
                             "$JANUA_KEK_OLD): during and after an interrupted `janua kek rotate`")
    parser.add_argument("--dev", action="store_true",
                        help="local use: generate a KEK beside the db and a 'default' tenant with a token")
    parser.add_argument("--source-rate", metavar="CAPACITY/REFILL", default="1000/500",
                        help="verifier-wide per-source-address limit before device lookup (default 1000/500)")
    parser.add_argument("--auth-cache-devices", metavar="N", type=int, default=200_000,
                        help="devices whose binary-auth state (derived key, replay state) stays in memory, about "
                             "550 bytes each; past it the least recently used is read again on its next packet")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="log level (to stderr)")
    edge = parser.add_argument_group("edge verifier")
    edge.add_argument("--edge", action="store_true", help="run an edge verifier in front of --upstream")
    edge.add_argument("--upstream", metavar="URL", help="the cloud verifier's base URL, e.g. http://cloud:8080")
    edge.add_argument("--upstream-token-file", metavar="FILE",
                      help="file holding a tenant token (jna_...) of the upstream with role edge (docs/api.md "
                           "\"Roles\"); the edge serves that tenant")
    edge.add_argument("--max-offline", metavar="SECONDS", type=int, default=7 * 86400,
                      help="refuse everything after this long without a successful sync (default 604800: 7 days)")
    edge.add_argument("--sync-interval", metavar="SECONDS", type=int, default=3600,
                      help="sync with the upstream this often (default 3600)")
    edge.add_argument("--cache-size", type=int, default=10_000, help="devices kept in the cache (default 10000)")
    edge.add_argument("--cache-ttl", metavar="SECONDS", type=int, default=3600,
                      help="re-fetch a cached device from the upstream after this long (default 3600)")
    edge.add_argument("--tpm", metavar="TCTI", help="attest this gateway with its TPM 2.0 (tpm2-tools TCTI, e.g. "
                      "device:/dev/tpmrm0): enrol once, attest at start and every gateway interval")
    edge.add_argument("--gateway-name", help="with --tpm: the gateway's name, for its first enrolment")
    edge.add_argument("--gateway-model", help="with --tpm: its model (reference PCRs are per model)")
    edge.add_argument("--gateway-state", metavar="FILE", default="janua-gateway.json",
                      help="with --tpm: where the enrolled gateway's id is kept (default janua-gateway.json)")
    edge.add_argument("--ek-chain", nargs="*", default=[], metavar="PEM",
                      help="with --tpm: intermediate CA certificates of the EK certificate")


def _config(args):
    from verifier.config import Config
    try:
        cap, refill = (float(x) for x in args.source_rate.split("/"))
    except ValueError:
        raise ServeError(f"--source-rate must look like 1000/500, not {args.source_rate!r}") from None
    if args.auth_cache_devices < 1:
        raise ServeError("--auth-cache-devices must be at least 1")
    edge = _edge_config(args)
    config = Config(db_path=args.db or ("janua-edge.db" if edge else "janua.db"), state_dir=args.state_dir,
                    kek_file=args.kek_file,
                    old_kek_files=tuple(args.old_kek_file or ()), dev=args.dev, http_host=args.http_host, http_port=args.http_port, udp_host=args.udp_host,
                    udp_port=None if args.udp_port < 0 else args.udp_port, dtls_host=args.dtls_host,
                    dtls_port=None if args.dtls_port < 0 or edge else args.dtls_port,
                    coap_claim_host=args.coap_claim_host,
                    coap_claim_port=None if args.coap_claim_port < 0 or edge else args.coap_claim_port, log_level=args.log_level,
                    source_capacity=cap, source_refill_per_s=refill, edge=edge,
                    tls_cert=args.tls_cert, tls_key=args.tls_key, insecure_http=args.insecure_http,
                    trusted_proxies=_trusted_proxies(args.trusted_proxy), auth_cache_devices=args.auth_cache_devices)
    _check_tls_options(args, config)
    return config


def _trusted_proxies(values):
    from verifier.web.source import parse_networks
    try:
        return parse_networks(values)
    except ValueError as e:
        raise ServeError(f"--trusted-proxy: {e}", hint="e.g. --trusted-proxy 10.0.0.5 --trusted-proxy 10.1.0.0/16") \
            from None


def _check_tls_options(args, config):
    """The TLS options that go together, and plain HTTP on a non-loopback address (before anything starts)."""
    from verifier.web.tls import is_loopback
    if args.tls_self_signed:
        if not args.dev:
            raise ServeError("--tls-self-signed is for local use with --dev",
                             hint="in production give your certificate: --tls-cert FILE --tls-key FILE")
        if args.tls_cert or args.tls_key:
            raise ServeError("--tls-self-signed makes its own certificate: drop --tls-cert/--tls-key")
        return
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ServeError("TLS needs both --tls-cert FILE and --tls-key FILE")
    if not args.tls_cert and not args.insecure_http and not is_loopback(config.http_host):
        raise ServeError(f"refusing plain HTTP on {config.http_host}: not a loopback address, so admin tokens "
                         f"and device secrets would cross the network in clear",
                         hint="give --tls-cert FILE --tls-key FILE (or --dev --tls-self-signed), or accept "
                              "the risk with --insecure-http")


def _tls_files(args, config):
    """The certificate and key into `config` (the dev pair made or reused with --tls-self-signed), checked
    as the listener will use them; returns the self-signed pair's (cert, key, created) or None."""
    from verifier.errors import ConfigError
    from verifier.web import tls
    made = None
    try:
        if args.tls_self_signed:
            made = tls.ensure_self_signed(config.files_base(), config.http_host)
            config.tls_cert, config.tls_key = str(made[0]), str(made[1])
        if config.tls_cert:
            tls.server_context(config.tls_cert, config.tls_key)
    except ConfigError as e:
        raise ServeError(str(e)) from None
    return made


def _edge_config(args):
    from verifier.config import EdgeConfig, is_http_url
    given = [f for f, v in (("--upstream", args.upstream), ("--upstream-token-file", args.upstream_token_file),
                            ("--tpm", args.tpm)) if v is not None]
    if not args.edge:
        if given:
            raise ServeError(f"{given[0]} is an edge option", hint="add --edge to run an edge verifier")
        return None
    if not args.upstream:
        raise ServeError("--edge needs --upstream URL: the cloud verifier the edge serves from",
                       hint="e.g. janua serve --edge --upstream http://cloud:8080 --upstream-token-file edge.token")
    if not is_http_url(args.upstream):
        raise ServeError(f"--upstream must be an http:// or https:// URL, not {args.upstream!r}",
                         hint="e.g. --upstream http://127.0.0.1:8080")
    if not args.upstream_token_file:
        raise ServeError("--edge needs --upstream-token-file FILE: a tenant token (jna_...) of the upstream with "
                         "role edge", hint="issue one on the cloud: janua tenant token NAME --role edge --label edge > "
                                           "edge.token")
    try:
        token = Path(args.upstream_token_file).read_text().strip()
    except OSError as e:
        raise ServeError(f"cannot read {args.upstream_token_file}: {e.strerror}") from None
    if not token.startswith("jna_") or any(c.isspace() for c in token):
        raise ServeError(f"{args.upstream_token_file} does not hold an admin token (jna_...)")
    for name, value, lo in (("--max-offline", args.max_offline, 0), ("--sync-interval", args.sync_interval, 1),
                            ("--cache-size", args.cache_size, 1), ("--cache-ttl", args.cache_ttl, 1)):
        if value < lo:
            raise ServeError(f"{name} must be at least {lo}")
    return EdgeConfig(upstream=args.upstream, token=token, max_offline_s=args.max_offline,
                      sync_interval_s=args.sync_interval, cache_size=args.cache_size, cache_ttl_s=args.cache_ttl,
                      tpm=args.tpm, gateway_name=args.gateway_name, gateway_model=args.gateway_model,
                      gateway_state=args.gateway_state, ek_chain=_ek_chain(args.ek_chain))


def _ek_chain(paths):
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    out = []
    for p in paths:
        try:
            out.append(x509.load_pem_x509_certificate(Path(p).read_bytes()).public_bytes(Encoding.DER))
        except OSError as e:
            raise ServeError(f"cannot read {p}: {e.strerror}") from None
        except ValueError:
            raise ServeError(f"{p} is not a PEM certificate") from None
    return tuple(out)


def ensure_dev_tenant(db_path, files_base=None):
    """Create tenant 'default' and a token if the registry has no tenant; return (token, file) or None."""
    from verifier.registry import core as registry
    from verifier.storage import open_storage
    storage = open_storage(db_path)
    try:
        if storage.count_tenants():
            return None
        now = time.time()
        tenant = registry.create_tenant(storage, "default", now)
        _, token = registry.issue_token(storage, tenant["id"], now, label="dev")
    finally:
        storage.close()
    # A fresh registry: a <db>.token already there is a stale token of a registry that no longer exists.
    # The new one goes into a new 0600 file renamed over it (never written into the old file or its mode).
    from verifier import secretfile
    path = Path((files_base or str(db_path)) + ".token")
    stale = path.exists()
    try:
        secretfile.replace(path, (token + "\n").encode())
    except OSError as e:
        raise ServeError(f"cannot write the dev token file {path}: {e.strerror}") from None
    if stale:
        print(f"janua serve: replaced {path}, the token of an earlier registry of that name", file=sys.stderr)
    return token, path


async def _serve(config):
    from verifier.app import start_server
    try:
        handle = await start_server(config)
    except OSError as e:
        raise ServeError(f"cannot listen: {e.strerror or e}",
                       hint="is another verifier running? pick other ports with --http-port/--udp-port/"
                            "--dtls-port") from e
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):   # before the ready line: a SIGTERM right after it stops cleanly
        loop.add_signal_handler(sig, stop.set)
    line = handle.listen_line()
    print(line + f" edge upstream={config.edge.upstream}" if config.edge else line, flush=True)
    try:
        await stop.wait()
    finally:
        await handle.close()


def _explicit(parser, argv):
    # the dests of the options given on the command line (they win over the config file)
    out = set()
    for tok in argv or ():
        if tok.startswith("--"):
            a = parser._option_string_actions.get(tok.split("=", 1)[0])
            if a is not None:
                out.add(a.dest)
    return out


def _typed(action, value, key, path):
    # `value` from the file as the option would have parsed it, or ServeError
    where = f"--config {path}: {key}"
    if action.nargs == 0:                                  # store_true
        if not isinstance(value, bool):
            raise ServeError(f"{where} must be true or false")
        return value
    if isinstance(action, argparse._AppendAction) or action.nargs in ("*", "+"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ServeError(f"{where} must be a list of strings")
        return value
    if action.type is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ServeError(f"{where} must be an integer")
    elif not isinstance(value, str):
        raise ServeError(f"{where} must be a string")
    if action.choices is not None and value not in action.choices:
        raise ServeError(f"{where} must be one of {', '.join(map(str, action.choices))}")
    return value


def _settings(parser):
    return [a for a in parser._actions if a.option_strings and a.dest not in _NOT_IN_FILE]


def apply_config_file(args, argv=None):
    """Settings of `args.config` (TOML) into `args`, except those given on the command line; ServeError for an
    unreadable file, an unknown setting or a wrong type."""
    path = getattr(args, "config", None)
    parser = getattr(args, "_serve_parser", None)
    if not path or parser is None:
        return args
    import tomllib
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as e:
        raise ServeError(f"cannot read --config {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ServeError(f"--config {path} is not valid TOML: {e}") from None
    known = {a.dest: a for a in _settings(parser)}
    explicit = _explicit(parser, sys.argv[1:] if argv is None else argv)
    for key, value in doc.items():
        action = known.get(key.replace("-", "_"))
        if action is None:
            raise ServeError(f"--config {path}: unknown setting {key!r}",
                             hint="the settings are janua serve's options without the leading --, "
                                  "with _ for - (janua serve --help)")
        if action.dest not in explicit:
            setattr(args, action.dest, _typed(action, value, key, path))
    return args


def _toml_value(v):
    import json
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))       # a TOML basic string is a JSON string


def print_config(args):
    """The effective settings as TOML (unset ones as comments); holds no secret (the KEK never is a setting)."""
    lines = ["# janua serve: effective settings (config file, then command line, then defaults)"]
    for a in _settings(args._serve_parser):
        v = getattr(args, a.dest, None)
        if a.dest == "db" and v is not None:
            from verifier.dburl import redact_url
            v = redact_url(v)               # a password in a database URL is a secret
        lines.append(f"# {a.dest} (not set)" if v is None else f"{a.dest} = {_toml_value(v)}")
    print("\n".join(lines))
    return 0


def run(args):
    from verifier.config import make_sealer
    from verifier.errors import VerifierError
    apply_config_file(args)
    if getattr(args, "print_config", False):
        return print_config(args)
    config = _config(args)
    logging.basicConfig(level=config.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from verifier.dburl import is_database_url
    # before anything writes: one verifier per SQLite file (PostgreSQL is shared by design: no lock)
    lock = None if is_database_url(config.db_path) else _writer_lock(config.db_path)
    made = _tls_files(args, config)
    try:
        make_sealer(config)   # fail before anything else if a KEK is missing (creates the dev key file)
        if made:
            print(f"janua serve: tls-cert={made[0]} tls-key={made[1]} self-signed "
                  f"{'created' if made[2] else 'reused'}", flush=True)
        if config.dev and not config.edge:
            made = ensure_dev_tenant(config.db_path, config.files_base())
            if made:
                print(f"janua serve: token={made[0]} tenant=default file={made[1]}", flush=True)
        asyncio.run(_serve(config))
    except VerifierError as e:
        raise ServeError(str(e), hint="janua serve --dev runs with a generated key for local use"
                       if e.code == "config_error" else None) from e
    finally:
        if lock is not None:
            lock.close()


def _writer_lock(db_path):
    """The writer lock of the registry (or the edge's own file), held until the verifier stops."""
    from verifier import store_lock
    try:
        return store_lock.acquire(db_path)
    except store_lock.LockHeld as e:
        raise ServeError(str(e)) from None
    except OSError as e:
        raise ServeError(f"cannot open the lock file {store_lock.lock_path(db_path)}: {e.strerror}") from None
