"""The private PostgreSQL cluster that the storage tests will run on (tests/pgcluster.py): it answers, it is not
the system's server, it is fast where that is safe for a throwaway cluster, and both psycopg APIs the verifier
will use (sync for admin tools, async with LISTEN/NOTIFY for the auth path) work against it."""

import os
import socket
import stat
import tempfile
from pathlib import Path

import psycopg
import pytest

from tests.pgcluster import PGCluster, PGClusterError, find_bindir, fresh_database, fresh_schema


def test_answers_select_1_on_janua_test(pg_url):
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.execute("SELECT current_database()").fetchone() == ("janua_test",)


def test_url_is_loopback_on_a_port_other_than_the_system_servers(pg_url):
    with psycopg.connect(pg_url) as conn:
        port = int(conn.execute("SHOW port").fetchone()[0])
        listen = conn.execute("SHOW listen_addresses").fetchone()[0]
    assert port != 5432
    assert pg_url.startswith("postgresql://") and f"@127.0.0.1:{port}/janua_test" in pg_url
    assert listen == "127.0.0.1"


def test_data_directory_is_inside_a_private_temp_dir(pg_url, pg_cluster):
    with psycopg.connect(pg_url) as conn:
        datadir = Path(conn.execute("SHOW data_directory").fetchone()[0])
        sockets = conn.execute("SHOW unix_socket_directories").fetchone()[0]
    tmp = Path(pg_cluster.tmpdir)
    assert datadir.parent == tmp and tmp.parent == Path(tempfile.gettempdir())
    assert not str(datadir).startswith("/var/lib/postgresql")
    assert sockets == str(tmp)
    assert stat.S_IMODE(tmp.stat().st_mode) == 0o700
    if os.geteuid() == 0:       # initdb refuses root: the cluster runs as the postgres system user
        assert tmp.owner() == "postgres" and datadir.owner() == "postgres"


def test_fsync_off_synchronous_commit_kept(pg_url):
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SHOW fsync").fetchone() == ("off",)
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
        assert conn.execute("SHOW server_encoding").fetchone() == ("UTF8",)


def test_fresh_database_gives_two_distinct_empty_databases(pg_url):
    a, b = fresh_database(pg_url), fresh_database(pg_url)
    assert a != b
    with psycopg.connect(a) as ca, psycopg.connect(b) as cb:
        name_a = ca.execute("SELECT current_database()").fetchone()[0]
        name_b = cb.execute("SELECT current_database()").fetchone()[0]
        ca.execute("CREATE TABLE t (x int)")
        ca.commit()
        # A table made in one is not in the other, nor in janua_test.
        assert cb.execute("SELECT count(*) FROM pg_tables WHERE tablename = 't'").fetchone() == (0,)
    assert name_a != name_b and "janua_test" not in (name_a, name_b)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 't'").fetchone() == (0,)


def test_fresh_schema_gives_two_separate_namespaces_of_one_database(pg_url):
    db = fresh_database(pg_url)
    a, b = fresh_schema(db), fresh_schema(db)
    assert a != b and a.startswith(db + "?options=-csearch_path%3Djanua_")
    with psycopg.connect(a, autocommit=True) as ca, psycopg.connect(b, autocommit=True) as cb:
        schema_a = ca.execute("SELECT current_schema()").fetchone()[0]
        schema_b = cb.execute("SELECT current_schema()").fetchone()[0]
        ca.execute("CREATE TABLE t (x int)")
        ca.execute("INSERT INTO t VALUES (1)")
        cb.execute("CREATE TABLE t (x int)")         # the same unqualified name, another table
        assert cb.execute("SELECT count(*) FROM t").fetchone() == (0,)
        assert ca.execute("SELECT current_database()").fetchone() == cb.execute("SELECT current_database()").fetchone()
    assert schema_a != schema_b and "public" not in (schema_a, schema_b)
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 't' AND schemaname = 'public'"
                            ).fetchone() == (0,)


def test_sync_connection_transaction_and_rollback(pg_url):
    url = fresh_database(pg_url)
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.commit()
        conn.execute("INSERT INTO t VALUES (%s)", (7,))
        conn.rollback()
        conn.execute("INSERT INTO t VALUES (%s)", (8,))
        conn.commit()
        assert conn.execute("SELECT x FROM t").fetchall() == [(8,)]


async def test_async_connection(pg_url):
    async with await psycopg.AsyncConnection.connect(pg_url) as conn:
        cur = await conn.execute("SELECT %s::int + 1", (41,))
        assert await cur.fetchone() == (42,)


async def test_listen_notify_delivers_payload(pg_url):
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as listener, \
            await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as sender:
        await listener.execute("LISTEN janua_devices")
        await sender.execute("SELECT pg_notify('janua_devices', 'suspend:0a1b')")
        got = [(n.channel, n.payload) async for n in listener.notifies(timeout=5, stop_after=1)]
    assert got == [("janua_devices", "suspend:0a1b")]


def test_missing_binaries_fail_with_the_make_target(tmp_path):
    (tmp_path / "15" / "bin").mkdir(parents=True)
    (tmp_path / "15" / "bin" / "psql").touch()      # a client-only install: no server binaries
    with pytest.raises(PGClusterError, match="make debs-test"):
        find_bindir(root=tmp_path, env={})


def test_highest_major_with_server_binaries_is_picked(tmp_path):
    for major in ("9.6", "13", "16"):
        for tool in ("initdb", "pg_ctl", "postgres"):
            (tmp_path / major / "bin").mkdir(parents=True, exist_ok=True)
            (tmp_path / major / "bin" / tool).touch()
    (tmp_path / "17" / "bin").mkdir(parents=True)       # client only: skipped
    assert find_bindir(root=tmp_path, env={}) == tmp_path / "16" / "bin"


def test_stop_removes_the_directory_and_the_server():
    cluster = PGCluster()
    cluster.start()
    tmp, port = Path(cluster.tmpdir), cluster.port
    cluster.stop()
    assert not tmp.exists()
    with pytest.raises(ConnectionRefusedError):     # the server is gone, not only its files
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    cluster.stop()      # idempotent
