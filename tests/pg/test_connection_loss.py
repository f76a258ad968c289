"""What a verifier's PostgreSQL connections do when the server goes away (docs/operations.md 5c): a libpq multi-host
URL with target_session_attrs=read-write finds the server past a host that is down; the storage's connection does
not come back by itself once cut (every call is a StorageError, /healthz says 503, the process must be restarted),
while the release files' reader connects again at the next download."""

import socket

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


async def test_the_storage_connection_stays_down_the_blob_reader_comes_back(pg_url, tmp_path):
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

        _kill(url, st._db.execute("SELECT pg_backend_pid()").fetchone()[0])
        for _ in range(2):                     # no reconnection: refused now and after
            with pytest.raises(StorageError):
                st.ping()
    finally:
        await blobs.close()
        st.close()
