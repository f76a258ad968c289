"""`janua serve`: run the verifier (HTTP admin API, binary auth over HTTP and UDP, DTLS/CoAP) in one
process.

Once listening it prints one machine-readable line to stdout:
    janua serve: http=127.0.0.1:8080 udp=127.0.0.1:5685 dtls=127.0.0.1:5684
With --dev it also generates a KEK file beside the database, creates a tenant "default" if there is
none, and prints its admin token once (`janua serve: token=jna_... tenant=default file=...`).
"""

import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path

from tools.errors import CLIError


def configure(parser):
    parser.add_argument("--db", default="janua.db", help="SQLite registry file (default: janua.db)")
    parser.add_argument("--http-host", default="127.0.0.1")
    parser.add_argument("--http-port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--udp-host", default="127.0.0.1")
    parser.add_argument("--udp-port", type=int, default=5685, help="0 picks a free port; -1 disables UDP")
    parser.add_argument("--dtls-host", default="127.0.0.1")
    parser.add_argument("--dtls-port", type=int, default=5684,
                        help="DTLS/CoAP (coaps) port; 0 picks a free port; -1 disables DTLS")
    parser.add_argument("--kek-file", help="key-encryption key file (32 bytes as 64 hex characters); "
                                           "or set $JANUA_KEK")
    parser.add_argument("--dev", action="store_true",
                        help="local use: generate a KEK beside the db and a 'default' tenant with a token")
    parser.add_argument("--source-rate", metavar="CAPACITY/REFILL", default="1000/500",
                        help="verifier-wide per-source-address limit before device lookup (default 1000/500)")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))


def _config(args):
    from verifier.config import Config
    try:
        cap, refill = (float(x) for x in args.source_rate.split("/"))
    except ValueError:
        raise CLIError(f"--source-rate must look like 1000/500, not {args.source_rate!r}") from None
    return Config(db_path=args.db, kek_file=args.kek_file, dev=args.dev, http_host=args.http_host,
                  http_port=args.http_port, udp_host=args.udp_host,
                  udp_port=None if args.udp_port < 0 else args.udp_port, dtls_host=args.dtls_host,
                  dtls_port=None if args.dtls_port < 0 else args.dtls_port, log_level=args.log_level,
                  source_capacity=cap, source_refill_per_s=refill)


def ensure_dev_tenant(db_path):
    """Create tenant 'default' and a token if the registry has no tenant; return (token, file) or None."""
    from verifier import registry
    from verifier.storage import SQLiteStorage
    storage = SQLiteStorage(db_path)
    try:
        if storage.count_tenants():
            return None
        now = time.time()
        tenant = registry.create_tenant(storage, "default", now)
        _, token = registry.issue_token(storage, tenant["id"], now, label="dev")
    finally:
        storage.close()
    path = Path(str(db_path) + ".token")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token, path


async def _serve(config):
    from verifier.app import start_server
    try:
        handle = await start_server(config)
    except OSError as e:
        raise CLIError(f"cannot listen: {e.strerror or e}",
                       hint="is another verifier running? pick other ports with --http-port/--udp-port/"
                            "--dtls-port") from e
    print(handle.listen_line(), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await handle.close()


def run(args):
    from verifier.config import load_kek
    from verifier.errors import VerifierError
    config = _config(args)
    logging.basicConfig(level=config.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        load_kek(config)   # fail before anything else if there is no KEK (creates the dev key file)
        if config.dev:
            made = ensure_dev_tenant(config.db_path)
            if made:
                print(f"janua serve: token={made[0]} tenant=default file={made[1]}", flush=True)
        asyncio.run(_serve(config))
    except VerifierError as e:
        raise CLIError(str(e), hint="janua serve --dev runs with a generated key for local use"
                       if e.code == "config_error" else None) from e
