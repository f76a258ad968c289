"""The registry file carries its schema version (PRAGMA user_version): a new file and an old one are brought to it,
and a file a newer janua wrote is refused before anything is changed (docs/operations.md 5)."""

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from verifier.errors import StorageError
from verifier.store import SQLiteStorage

ROOT = Path(__file__).resolve().parents[2]


def version(path):
    db = sqlite3.connect(path)
    try:
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


def test_a_new_file_gets_version_2(tmp_path):
    SQLiteStorage(str(tmp_path / "r.db")).close()
    assert version(tmp_path / "r.db") == 3


def test_a_file_from_before_versions_is_migrated_and_stamped(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    # the tokens table as the first release made it: no role column; user_version 0
    db.executescript("CREATE TABLE tenants (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created INTEGER NOT NULL, "
                     "policy TEXT NOT NULL);"
                     "CREATE TABLE tokens (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), "
                     "hash BLOB NOT NULL UNIQUE, label TEXT, created INTEGER NOT NULL, revoked_at INTEGER);"
                     "INSERT INTO tenants VALUES ('t1', 'acme', 1, '{}');"
                     "INSERT INTO tokens VALUES ('k1', 't1', x'01', NULL, 1, NULL);")
    db.commit()
    db.close()
    SQLiteStorage(str(path)).close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT role FROM tokens WHERE id = 'k1'").fetchone() == ("admin",)
    db.close()
    assert version(path) == 3


def test_a_file_of_a_newer_version_is_refused_untouched(tmp_path):
    path = tmp_path / "newer.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 7")
    db.close()
    with pytest.raises(StorageError) as e:
        SQLiteStorage(str(path))
    assert "its schema version is 7, written by a newer janua; this janua knows versions up to 3" in str(e.value)
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)   # no table was made
    db.close()
    assert version(path) == 7


def test_serve_on_a_newer_file_says_so_in_one_line(tmp_path):
    path = tmp_path / "newer.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 4")
    db.close()
    r = subprocess.run([sys.executable, "-m", "tools", "serve", "--dev", "--db", str(path), "--http-port", "0",
                        "--udp-port", "0", "--dtls-port", "0"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("janua:")]
    assert lines and "schema version is 4, written by a newer janua" in lines[0], r.stderr
