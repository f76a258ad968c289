"""Backup and restore of the SQLite registry (`janua backup`, `janua restore`; docs/operations.md).

`backup` is an online copy with SQLite's backup API while `janua serve` runs and writes: it holds one read
transaction on the source for the whole copy, so every page comes from one snapshot (in WAL mode the
verifier keeps writing meanwhile; without the snapshot a write between two steps would restart the copy,
and under a busy verifier it might never end). It copies in steps of `step_pages` pages and reports
progress after each. The copy is a new 0600 file `<out>.tmp`, made a self-contained file (journal mode
DELETE), fsynced, then linked to `<out>` only if nothing is there (never overwritten), and the directory
fsynced.

`restore` checks a backup (SQLite's integrity_check, and the registry's tables) before it touches anything,
holds the writer lock of the target (store_lock: no verifier may run on it meanwhile), refuses a target
that exists unless forced (then the old file, with its -wal and -shm, is kept as
`<db>.before-restore-<UTC time>`), and copies the same way.

What neither does: copy the key-encryption key (it is never in the database; the restored registry
needs the KEK it was sealed with), or the OTA release files (`<db>.releases/`, plain files).
"""

import dataclasses
import os
import sqlite3
import time
import urllib.parse
from pathlib import Path

from verifier import secretfile, store_lock
from verifier.errors import VerifierError

# the registry's own tables: every janua registry has them (the features' tables are added at open)
REGISTRY_TABLES = ("tenants", "tokens", "devices", "auth_state", "audit")
SIDE_FILES = ("", "-wal", "-shm", "-journal")      # a SQLite file and what SQLite keeps beside it
DEFAULT_STEP_PAGES = 1024


class BackupError(VerifierError):
    """A backup or restore refused or failed (the file exists, is not a registry, is in use)."""

    code = "backup_error"

    def __init__(self, message, hint=None):
        super().__init__(message)
        self.hint = hint


@dataclasses.dataclass
class Copied:
    """What a backup or restore wrote."""

    path: Path
    size: int            # bytes
    devices: int
    tenants: int
    seconds: float
    kept: Path = None    # restore --force: where the old registry went


def _connect(path, mode):
    """A connection to an existing file (mode "ro" or "rw"; never creates one)."""
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=" + mode
    conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def check_registry(conn, name):
    """Raise BackupError unless `conn` is a SQLite database with the registry's tables."""
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as e:
        raise BackupError(f"{name} is not a SQLite database ({e})") from None
    missing = [t for t in REGISTRY_TABLES if t not in tables]
    if missing:
        raise BackupError(f"{name} is not a janua registry (it has no table {', '.join(missing)})")


def _counts(conn):
    return (conn.execute("SELECT count(*) FROM devices").fetchone()[0],
            conn.execute("SELECT count(*) FROM tenants").fetchone()[0])


def _remove(path):
    for suffix in SIDE_FILES:
        try:
            os.unlink(str(path) + suffix)
        except FileNotFoundError:
            pass


def _copy(src, dst_path, step_pages, progress):
    """Copy `src` (a connection, in the transaction the caller chose) into the new file `dst_path`
    (0600, FileExistsError if there), self-contained and fsynced. Returns (devices, tenants)."""
    secretfile.open_new(dst_path).close()
    try:
        dst = sqlite3.connect(dst_path, isolation_level=None)
        try:
            def step(status, remaining, total):
                if progress is not None:
                    progress(total - remaining, total)
            src.backup(dst, pages=step_pages, progress=step)
            dst.execute("PRAGMA journal_mode=DELETE")     # one file: no -wal to lose beside it
            counts = _counts(dst)
        finally:
            dst.close()
        fd = os.open(dst_path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        _remove(dst_path)
        raise
    return counts


def _publish(tmp, path):
    """Give the finished `tmp` the name `path` only if nothing is there (link, then unlink), durably."""
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise BackupError(f"{path} appeared while the copy was made: not overwritten "
                              f"(the copy is removed)") from None
        except OSError:                  # a file system without hard links: check, then rename
            if os.path.lexists(path):
                raise BackupError(f"{path} appeared while the copy was made: not overwritten") from None
            os.rename(tmp, path)
    finally:
        _remove(tmp)
    secretfile.sync_dir(path)


def _tmp_path(path):
    return Path(str(path) + ".tmp")


def backup(db_path, out_path, step_pages=DEFAULT_STEP_PAGES, progress=None, clock=time.monotonic):
    """Copy the registry `db_path` to the new file `out_path` while a verifier may be writing it.
    `progress(done_pages, total_pages)` after each step. Returns a Copied."""
    db_path, out = Path(db_path), Path(out_path)
    if step_pages < 1:
        raise BackupError("the step must be at least 1 page")
    if not db_path.is_file():
        raise BackupError(f"no registry at {db_path}")
    if os.path.lexists(out):
        raise BackupError(f"{out} exists: a backup never overwrites a file", hint="pick a new name for --out")
    tmp = _tmp_path(out)
    if os.path.lexists(tmp):
        raise BackupError(f"{tmp} exists, left by a backup that did not finish?",
                          hint=f"remove {tmp} and run the backup again")
    start = clock()
    try:
        src = _connect(db_path, "rw")
    except sqlite3.Error as e:
        raise BackupError(f"cannot open {db_path}: {e}") from None
    try:
        src.execute("BEGIN")                 # a read transaction: the snapshot starts at the first read
        check_registry(src, db_path)
        try:
            devices, tenants = _copy(src, tmp, step_pages, progress)
        except FileExistsError:
            raise BackupError(f"{tmp} exists, left by a backup that did not finish?",
                              hint=f"remove {tmp} and run the backup again") from None
        except sqlite3.Error as e:
            raise BackupError(f"the backup of {db_path} failed: {e}") from None
    finally:
        src.close()                          # ends the read transaction
    _publish(tmp, out)
    return Copied(out, out.stat().st_size, devices, tenants, clock() - start)


def verify_backup(path):
    """Open a backup read-only and check it (integrity_check, the registry's tables): a connection, or
    BackupError."""
    if not Path(path).is_file():
        raise BackupError(f"no backup at {path}")
    try:
        conn = _connect(path, "ro")
    except sqlite3.Error as e:
        raise BackupError(f"cannot open {path}: {e}") from None
    try:
        try:
            rows = [r[0] for r in conn.execute("PRAGMA integrity_check(5)")]
        except sqlite3.DatabaseError as e:
            raise BackupError(f"{path} is not a SQLite database, or is damaged ({e})") from None
        if rows != ["ok"]:
            raise BackupError(f"{path} fails SQLite's integrity check: {'; '.join(rows)}")
        check_registry(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def restore(backup_path, db_path, force=False, now=time.time, clock=time.monotonic):
    """Put the checked backup at `db_path`, a file no verifier holds; an existing one is refused, or with
    `force` kept as `<db>.before-restore-<UTC time>`. Returns a Copied."""
    db_path = Path(db_path)
    start = clock()
    src = verify_backup(backup_path)
    try:
        try:
            lock = store_lock.acquire(db_path)
        except store_lock.LockHeld as e:
            who = f"pid {e.pid}" if e.pid else "a process"
            raise BackupError(f"{db_path} is in use by a verifier ({who} holds {e.lock_path})",
                              hint="stop that verifier before restoring") from None
        except OSError as e:
            raise BackupError(f"cannot open the lock file {store_lock.lock_path(db_path)}: {e.strerror}") from None
        try:
            kept = _move_aside(db_path, force, now)
            tmp = _tmp_path(db_path)
            try:
                devices, tenants = _copy(src, tmp, DEFAULT_STEP_PAGES, None)   # nobody writes a backup
            except FileExistsError:
                raise BackupError(f"{tmp} exists, left by a restore that did not finish?",
                                  hint=f"remove {tmp} and run the restore again") from None
            except sqlite3.Error as e:
                raise BackupError(f"the restore into {db_path} failed: {e}") from None
            _publish(tmp, db_path)
        finally:
            lock.close()
    finally:
        src.close()
    return Copied(db_path, db_path.stat().st_size, devices, tenants, clock() - start, kept)


def _move_aside(db_path, force, now):
    """Refuse an existing target (or a -wal, -shm or -journal of one), or with `force` rename it and its
    side files to `<db>.before-restore-<UTC time>`; return that path or None."""
    present = [s for s in SIDE_FILES if os.path.lexists(str(db_path) + s)]
    if not present:
        return None
    if not force:
        raise BackupError(f"{db_path}{present[0]} exists: restore never replaces a registry",
                          hint=f"--force keeps the old one as {db_path}.before-restore-<time>")
    kept = Path(f"{db_path}.before-restore-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now()))}")
    if any(os.path.lexists(str(kept) + s) for s in SIDE_FILES):
        raise BackupError(f"{kept} exists", hint="try again in a second")
    for s in present:
        os.rename(str(db_path) + s, str(kept) + s)
    secretfile.sync_dir(db_path)
    return kept
