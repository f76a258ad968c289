"""Shared pytest setup: the hardware-in-loop option and marker, and the private PostgreSQL cluster (`pg_url`)."""

import pytest


def pytest_addoption(parser):
    parser.addoption("--board-port", default=None,
                     help="serial port of a real board for hardware-in-loop tests (marker hil)")
    parser.addoption("--board", default="esp32", help="profile of the board at --board-port")
    parser.addoption("--hil-wifi-ssid", default=None, help="Wi-Fi network the board joins (hil end to end)")
    parser.addoption("--hil-wifi-password", default=None, help="its password")
    parser.addoption("--hil-host-ip", default=None, help="this host's address on that network")


def pytest_collection_modifyitems(config, items):
    import os
    if os.environ.get("JANUA_TEST_BACKEND", "sqlite") == "postgresql":
        pg_skip = pytest.mark.skip(reason="sqlite_only: this test is about the SQLite file itself")
        for item in items:
            if "sqlite_only" in item.keywords:
                item.add_marker(pg_skip)
    if "slow" not in (config.getoption("-m") or "") and not os.environ.get("JANUA_SLOW"):
        # `slow` tests (the extended power-cut sets) run only when asked for: -m slow or JANUA_SLOW=1
        slow_skip = pytest.mark.skip(reason="slow: run with -m slow or JANUA_SLOW=1")
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(slow_skip)
    if config.getoption("--board-port"):
        return
    skip = pytest.mark.skip(reason="hardware-in-loop: needs --board-port /dev/ttyACM0")
    for item in items:
        if "hil" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def board_port(request):
    return request.config.getoption("--board-port")


@pytest.fixture(scope="session")
def pg_cluster():
    """The session's private PostgreSQL cluster (tests/pgcluster.py), started the first time a test asks for it
    and stopped at the end of the session. A missing server is a failure, not a skip: `make debs-test`."""
    from tests.pgcluster import PGCluster, PGClusterError
    cluster = PGCluster()
    try:
        cluster.start()
    except PGClusterError as e:
        pytest.fail(str(e), pytrace=False)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def pg_url(pg_cluster):
    """postgresql://USER@127.0.0.1:PORT/janua_test of the session's private cluster (shared by the session's
    tests: a test that needs an empty database takes `tests.pgcluster.fresh_database(pg_url)`)."""
    return pg_cluster.url


@pytest.fixture(scope="session", autouse=True)
def storage_backend(request):
    """JANUA_TEST_BACKEND=postgresql: every verifier the tests build in process (verifier.app's storage) keeps its
    registry in the private PostgreSQL cluster instead of the SQLite file its config names: one fresh schema of one
    database per file path, so a test that reopens a path reopens the same registry. The verifiers of a session
    share that database's NOTIFY channel (a cache drop meant for another schema's verifier only makes an entry be
    read again) and its advisory writer lock (held within a transaction: tests one after another never wait on
    it). Anything that opens the file itself (sqlite3, a `janua serve` subprocess) still uses SQLite.
    Unset: SQLite, as shipped."""
    import os
    if os.environ.get("JANUA_TEST_BACKEND", "sqlite") != "postgresql":
        yield "sqlite"
        return
    from tests.pgcluster import fresh_database, fresh_schema
    import verifier.app
    from verifier.store_pg import PGStorage
    # One database for the session, a fresh schema of it for each path (tests.pgcluster.fresh_schema): a fresh
    # database per path (a 7 MB copy of template1 each) made the server's disk the bottleneck of the pass.
    shared = fresh_database(request.getfixturevalue("pg_url"))
    databases = {}

    def storage_for(path):
        key = str(path)
        if key.startswith(("postgresql://", "postgres://")):     # a test that chose its database itself
            return PGStorage(key)
        if key not in databases:
            databases[key] = fresh_schema(shared)
        return PGStorage(databases[key])

    original = verifier.app.open_storage
    verifier.app.open_storage = storage_for
    yield "postgresql"
    verifier.app.open_storage = original
