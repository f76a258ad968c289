"""What a verifier's PostgreSQL connections do when the server goes away (docs/operations.md 5c): a libpq multi-host
URL with target_session_attrs=read-write finds the server past a host that is down; a connection that was cut is
opened again by the next statement outside a transaction (the storage's, the release files' reader), while a
transaction that was cut fails to its end and none of its statements runs on the new connection."""

import socket
import sqlite3

import psycopg
import pytest

from tests.pgcluster import fresh_database
from verifier.errors import StorageError
from verifier.store_pg import PGStorage


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill(url, pid):
    with psycopg.connect(url, autocommit=True) as c:
        assert c.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0] is True


def test_a_multi_host_url_skips_a_host_that_is_down(pg_url):
    url = fresh_database(pg_url)
    head, tail = url.split("@", 1)
    multi = f"{head}@127.0.0.1:{_free_port()},{tail}?target_session_attrs=read-write"
    st = PGStorage(multi)
    try:
        st.ping()
        assert st._db.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False
    finally:
        st.close()


async def test_the_storage_connection_and_the_blob_reader_come_back(pg_url, tmp_path):
    url = fresh_database(pg_url)
    st = PGStorage(url)
    blobs = st.release_blobs(tmp_path / "rel")
    try:
        tmp, f = blobs.new_temp()
        f.write(b"abc")
        f.close()
        blobs.commit(tmp, "cd" * 32)
        assert [c async for c in blobs.read("cd" * 32, 0, 3)] == [b"abc"]
        _kill(url, blobs._adb._conn.info.backend_pid)
        with pytest.raises(StorageError):
            [c async for c in blobs.read("cd" * 32, 0, 3)]
        assert [c async for c in blobs.read("cd" * 32, 1, 3)] == [b"bc"]       # a new connection

        old = st._db.execute("SELECT pg_backend_pid()").fetchone()[0]
        _kill(url, old)
        with pytest.raises(StorageError):      # the statement that meets the cut fails (it is not retried) ...
            st.ping()
        st.ping()                              # ... and the next one opens a new connection
        assert st._db.execute("SELECT pg_backend_pid()").fetchone()[0] != old
    finally:
        await blobs.close()
        st.close()


def test_a_transaction_cut_in_the_middle_fails_to_its_end(pg_url):
    url = fresh_database(pg_url)
    st = PGStorage(url)
    try:
        db = st._db
        db.execute("CREATE TABLE cut (n INTEGER)")
        db.execute("BEGIN")
        db.execute("INSERT INTO cut VALUES (1)")
        _kill(url, db.execute("SELECT pg_backend_pid()").fetchone()[0])
        with pytest.raises(sqlite3.Error):     # not run on a new connection outside its transaction
            db.execute("INSERT INTO cut VALUES (2)")
        with pytest.raises(sqlite3.Error):
            db.execute("INSERT INTO cut VALUES (3)")
        with pytest.raises(sqlite3.Error):
            db.execute("ROLLBACK")             # the transaction ends here (it was lost with the connection)
        # a COMMIT would have failed the same way: it is never sent on a new connection
        assert db.execute("SELECT count(*) FROM cut").fetchone()[0] == 0
    finally:
        st.close()


def test_a_commit_after_a_cut_fails_and_nothing_was_written(pg_url):
    url = fresh_database(pg_url)
    st = PGStorage(url)
    try:
        db = st._db
        db.execute("CREATE TABLE cut2 (n INTEGER)")
        db.execute("BEGIN")
        db.execute("INSERT INTO cut2 VALUES (1)")
        _kill(url, db.execute("SELECT pg_backend_pid()").fetchone()[0])
        with pytest.raises(sqlite3.Error):
            db.execute("COMMIT")
        assert db.execute("SELECT count(*) FROM cut2").fetchone()[0] == 0
    finally:
        st.close()
