"""`janua kek rotate`: re-seal every sealed value of a registry file under a new key-encryption key.

Crash-safe by construction: rows are re-sealed in batches, one transaction each, and each row is opened
with the new KEK or the old one, so a cut anywhere leaves a registry that OLD and NEW together open (a
verifier started with --kek-file NEW --old-kek-file OLD runs on it), and a second run finishes the job.
At the end every row is checked to open under NEW alone. docs/api.md "KEK rotation".
"""

import os
import sqlite3
import sys
import time
from pathlib import Path

from tools.errors import CLIError

BATCH_ENV = "JANUA_KEK_ROTATE_BATCH"           # rows per transaction (default DEFAULT_BATCH)
PAUSE_ENV = "JANUA_KEK_ROTATE_TEST_PAUSE"      # tests only: seconds to sleep after each committed batch
DEFAULT_BATCH = 500


def sealed_columns():
    """[(table, key column, sealed column, aad(row) -> (device_id, tenant_id))]: every value sealed under the
    KEK, with the AAD inputs its owner seals it with. A table absent from a file (an edge file has only
    edge_devices) is skipped, and so is a NULL value (a claim batch without a hook has no hook secret)."""
    from verifier.claims.batches import HOOK_SEAL, seal_id as batch_seal_id
    from verifier.mqtt.broker import ADMIN_SEAL_ID
    from verifier.mqtt.x509 import CA_SEAL_ID
    from verifier.notify.core import seal_id as webhook_seal_id
    from verifier.tokens.core import SEAL_TENANT, seal_id as token_seal_id
    return [
        ("devices", "id", "sealed_secret", lambda r: (bytes(r["id"]), r["tenant_id"])),
        ("x509_ca", "tenant_id", "sealed_key", lambda r: (CA_SEAL_ID, r["tenant_id"])),
        ("token_keys", "kid", "sealed", lambda r: (token_seal_id(r["kid"]), SEAL_TENANT)),
        ("notify_webhooks", "id", "sealed_secret", lambda r: (webhook_seal_id(r["id"]), r["tenant_id"])),
        ("claim_batches", "id", "sealed_secret", lambda r: (batch_seal_id(bytes(r["id"])), r["tenant_id"])),
        ("claim_batches", "id", "sealed_hook_secret",
         lambda r: (batch_seal_id(bytes(r["id"]), HOOK_SEAL), r["tenant_id"])),
        ("mqtt_broker", "id", "sealed_admin_password", lambda r: (ADMIN_SEAL_ID, "broker")),
        ("edge_devices", "id", "sealed_key", lambda r: (bytes(r["id"]), r["tenant_id"])),
    ]


def configure(parser):
    sub = parser.add_subparsers(dest="kek_command", metavar="ACTION")
    sub.required = True
    p = sub.add_parser("rotate", help="re-seal every secret of the registry under a new KEK (resumable)",
                       description="Re-seal every sealed value (device master secrets, tenant CA keys, token-"
                                   "signing keys, webhook secrets, claim batch and hook secrets, the MQTT broker's "
                                   "admin password) under NEW. "
                                   "Stop `janua serve` first. A cut run is finished by running it again.")
    p.add_argument("--db", default="janua.db", help="the registry file (or an edge verifier's file)")
    p.add_argument("--kek-file", metavar="OLD", help="the KEK the registry is sealed with now; or set $JANUA_KEK")
    p.add_argument("--new-kek-file", metavar="NEW", required=True,
                   help="the new KEK; created (0600, 32 random bytes as hex) when it does not exist, never overwritten")


def _lock(db):
    """The writer lock `janua serve` takes (verifier/store_lock.py): held for the whole rotation, so no verifier
    starts on the file meanwhile; refused while one runs."""
    from verifier import store_lock
    try:
        return store_lock.acquire(db)
    except store_lock.LockHeld as e:
        raise CLIError(str(e), hint="stop `janua serve` on this file, then rotate") from None
    except OSError as e:
        raise CLIError(f"cannot open {store_lock.lock_path(db)}: {e.strerror}") from e


def _new_kek(path):
    from verifier import secretfile
    from verifier.config import read_kek_file
    from verifier.keys import KEK_LEN
    p = Path(path)
    if not p.exists():
        secretfile.write_new(p, (os.urandom(KEK_LEN).hex() + "\n").encode())
        print(f"janua kek: created a new KEK in {p} (mode 0600)", flush=True)
    return read_kek_file(p)


def _tables(db):
    have = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return [t for t in sealed_columns() if t[0] in have]


def rotate_table(db, spec, both, new, batch, pause=0.0, out=None):
    """Re-seal one table in batches of `batch` rows; (rows, re-sealed). Rows already under NEW stay."""
    from verifier.errors import CryptoError
    table, key, col, aad = spec
    total = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    done = resealed = 0
    last = None
    while True:
        db.execute("BEGIN IMMEDIATE")
        try:
            where, params = (f"WHERE {key} > ?", (last,)) if last is not None else ("", ())
            rows = db.execute(f"SELECT * FROM {table} {where} ORDER BY {key} LIMIT ?", params + (batch,)).fetchall()
            for r in rows:
                if r[col] is None:
                    continue
                ids = aad(r)
                try:
                    new.unseal(bytes(r[col]), *ids)
                    continue                    # already under NEW (a run that was cut)
                except CryptoError:
                    pass
                try:
                    secret = both.unseal(bytes(r[col]), *ids)
                except CryptoError:
                    raise CLIError(f"{table} row {_show(r[key])} opens under neither KEK",
                                   hint="pass the KEK the registry is sealed with as --kek-file") from None
                db.execute(f"UPDATE {table} SET {col} = ? WHERE {key} = ?", (new.seal(secret, *ids), r[key]))
                resealed += 1
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if not rows:
            break
        done += len(rows)
        last = rows[-1][key]
        print(f"janua kek: {table}: {done}/{total} rows (re-sealed {resealed}) committed", file=out or sys.stdout,
              flush=True)
        if pause:
            time.sleep(pause)
    return done, resealed


def verify(db, tables, new):
    """[(table, key)] of the rows that do not open under NEW alone."""
    from verifier.errors import CryptoError
    bad = []
    for table, key, col, aad in tables:
        for r in db.execute(f"SELECT * FROM {table} ORDER BY {key}"):
            if r[col] is None:
                continue
            try:
                new.unseal(bytes(r[col]), *aad(r))
            except CryptoError:
                bad.append((table, _show(r[key])))
    return bad


def _show(key):
    return key.hex() if isinstance(key, bytes) else str(key)


def run(args):
    from verifier.config import Config, load_kek, read_kek_file
    from verifier.errors import VerifierError
    from verifier.keys import Sealer
    from verifier.dburl import is_database_url
    if is_database_url(args.db):
        raise CLIError("janua kek rotate works on a SQLite file only, for now; a PostgreSQL registry cannot be re-sealed yet")
    if not Path(args.db).is_file():
        raise CLIError(f"no registry file {args.db}")
    try:
        # an explicit --kek-file wins over $JANUA_KEK here (a shell may still export the old one)
        old = read_kek_file(args.kek_file) if args.kek_file else load_kek(Config(db_path=args.db))
        new_key = _new_kek(args.new_kek_file)
    except VerifierError as e:
        raise CLIError(str(e), hint="pass the current KEK as --kek-file OLD (or $JANUA_KEK)") from e
    if new_key == old:
        raise CLIError("the new KEK is the old one", hint="--new-kek-file must name a different key")
    try:
        batch = int(os.environ.get(BATCH_ENV) or DEFAULT_BATCH)
        pause = float(os.environ.get(PAUSE_ENV) or 0)
    except ValueError:
        raise CLIError(f"${BATCH_ENV} must be a number of rows") from None
    if batch < 1:
        raise CLIError(f"${BATCH_ENV} must be at least 1")
    lock = _lock(args.db)
    db = sqlite3.connect(args.db, isolation_level=None, timeout=30)
    db.row_factory = sqlite3.Row
    try:
        new, both = Sealer(new_key), Sealer(new_key, [old])
        tables = _tables(db)
        for spec in tables:
            rows, resealed = rotate_table(db, spec, both, new, batch, pause)
            print(f"janua kek: {spec[0]}: {rows} rows, {resealed} re-sealed, {rows - resealed} already under "
                  "the new KEK", flush=True)
        bad = verify(db, tables, new)
    except sqlite3.Error as e:
        raise CLIError(f"{args.db}: {e}", hint="the rows committed so far are under the new KEK; run again") from e
    finally:
        db.close()
        if lock is not None:
            lock.close()
    if bad:
        raise CLIError(f"{len(bad)} rows do not open under the new KEK: "
                       + ", ".join(f"{t} {k}" for t, k in bad[:10]), hint="run `janua kek rotate` again")
    print(f"janua kek: done: every sealed value of {args.db} opens with {args.new_kek_file} alone.\n"
          f"next: start janua serve with --kek-file {args.new_kek_file} (keep the old KEK until it runs on the "
          "new one; --old-kek-file OLD lets a verifier start in between); then destroy the old KEK and any "
          "backup sealed under it", flush=True)
    return 0
