"""A private PostgreSQL cluster for tests: its own data directory in a fresh temporary directory, its own
port, its own unix socket, started from Debian's server binaries and removed afterwards.

API (small on purpose):

    from tests.pgcluster import PGCluster, fresh_database

    cluster = PGCluster()
    url = cluster.start()     # postgresql://USER@127.0.0.1:PORT/janua_test, once the server answers
    cluster.tmpdir            # the private temporary directory; the data directory is cluster.datadir inside it
    fresh_database(url)       # the URL of a new, empty, uniquely named database on the same server
    fresh_schema(url)         # the URL of the same database, in a new, empty, uniquely named schema
    cluster.stop()            # pg_ctl stop -m fast, then the directory is removed; idempotent, also run at exit

Tests take it through the session fixture `pg_url` (tests/conftest.py), which starts one cluster the first time a
test asks for it and stops it at the end of the session; a session that never asks starts nothing.

What it does:
- the binaries are /usr/lib/postgresql/<major>/bin/{initdb,pg_ctl,postgres} of the highest major present (the
  PG_BINDIR environment variable overrides); none there is an error that says to run `make debs-test`.
- initdb refuses to run as root, and CI runs as root: as root, initdb and pg_ctl run as the unprivileged
  `postgres` system user (`runuser -u postgres --`), which then owns the temporary directory; otherwise as the
  current user. The database superuser is that user, and it is the user in the URL.
- authentication is `trust`, for the unix socket and for loopback TCP only: the server listens on 127.0.0.1
  alone, on a free port (never the system server's 5432), with its socket in the private temporary directory
  (mode 0700). While it runs, any local user who can reach 127.0.0.1:PORT is its superuser: it holds only
  test data and lives as long as the session.
- fsync=off: a power cut would corrupt this cluster, which is thrown away anyway, and the tests run faster.
  synchronous_commit keeps its default (on): what a commit means is what the storage tests check, so it is
  not relaxed.

What it does not do: touch the system's PostgreSQL, its data directory or its port; install anything (the
Makefile's debs-test does); survive a SIGKILL of the test process (atexit covers a normal or failing exit,
not that: a server left behind then is found by `ps -u postgres` with its data directory under the temp dir).
"""

import atexit
import os
import pwd
import re
import shlex
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from tests.mosquitto import free_port

PG_ROOT = Path("/usr/lib/postgresql")
DATABASE = "janua_test"
RUN_AS_ROOT = "postgres"        # the system user the cluster runs as when the tests run as root
START_TIMEOUT_S = 30
_PORT_TRIES = 3                 # a free port can be taken between free_port() and the server's bind
_NOT_YET = ("Connection refused", "starting up")
_HINT = "run make debs-test (installs Debian's postgresql package)"


class PGClusterError(RuntimeError):
    """The private cluster could not be found, initialised, started or stopped."""


def find_bindir(root=PG_ROOT, env=os.environ):
    """The bin directory of the highest PostgreSQL major under `root` that has initdb, pg_ctl and postgres."""
    if env.get("PG_BINDIR"):
        candidates = [Path(env["PG_BINDIR"])]
    else:
        majors = [p for p in root.glob("*") if re.fullmatch(r"\d+(\.\d+)?", p.name)]
        candidates = [p / "bin" for p in sorted(majors, key=lambda p: tuple(map(int, p.name.split("."))),
                                                reverse=True)]
    for bindir in candidates:
        if all((bindir / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return bindir
    where = env.get("PG_BINDIR") or f"{root}/<major>/bin"
    raise PGClusterError(f"PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in {where}: {_HINT}")


def _with_dbname(url, dbname):
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


def _create_database(url, name):
    with psycopg.connect(_with_dbname(url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def fresh_database(url):
    """Create a new, empty database on the server of `url` with a unique name; its URL."""
    name = f"janua_{uuid.uuid4().hex[:16]}"
    _create_database(url, name)
    return _with_dbname(url, name)


def fresh_schema(url):
    """Create a new, empty schema with a unique name in the database of `url`; the URL of that database with the
    schema as the search_path of its connections (libpq's `options`), so that everything made or read through
    it, unqualified, is in that schema alone. A few catalog rows, where a fresh database copies about 7 MB: what
    a session that needs hundreds of empty registries takes (tests/conftest.py storage_backend)."""
    name = f"janua_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    return f"{url}?options=-csearch_path%3D{name}"


class PGCluster:
    def __init__(self, bindir=None):
        self.bindir = Path(bindir) if bindir else None
        self.tmpdir = self.datadir = self.port = self.url = None
        self._as_root = os.geteuid() == 0
        self.user = RUN_AS_ROOT if self._as_root else pwd.getpwuid(os.geteuid()).pw_name

    # -- running the server's tools as the right user

    def _run(self, tool, *args, timeout=60):
        cmd = [str(self.bindir / tool), *map(str, args)]
        if self._as_root:
            cmd = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", RUN_AS_ROOT, "--", *cmd]
        # No PG* variable of the caller's environment (PGDATA, PGPORT, PGHOST) may point a tool at another server.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C")
        try:
            return subprocess.run(cmd, cwd=self.tmpdir, env=env, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise PGClusterError(f"{tool}: {e}") from None

    def _check(self, tool, *args, timeout=60):
        proc = self._run(tool, *args, timeout=timeout)
        if proc.returncode != 0:
            raise PGClusterError(f"{tool} exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()}"
                                 f"{self._log_tail()}")
        return proc

    def _log_tail(self, lines=20):
        log = Path(self.tmpdir) / "server.log" if self.tmpdir else None
        if log is None or not log.exists():
            return ""
        return "\n--- server.log ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    # -- lifecycle

    def start(self):
        """initdb, start on a free port, wait until it answers, create the janua_test database; its URL."""
        if self.url:
            return self.url
        if self.bindir is None:
            self.bindir = find_bindir()
        if self._as_root:
            try:
                ids = pwd.getpwnam(RUN_AS_ROOT)
            except KeyError:
                raise PGClusterError(f"running as root, but there is no `{RUN_AS_ROOT}` system user to run the "
                                     f"cluster as: {_HINT}") from None
        self.tmpdir = tempfile.mkdtemp(prefix="janua-pg-")      # mode 0700
        atexit.register(self.stop)
        try:
            if self._as_root:
                os.chown(self.tmpdir, ids.pw_uid, ids.pw_gid)
            self.datadir = str(Path(self.tmpdir) / "data")
            self._check("initdb", "-D", self.datadir, "-U", self.user, "-E", "UTF8", "--no-locale",
                        "--auth-local=trust", "--auth-host=trust", "--no-sync", "--no-instructions")
            self._start_on_free_port()
            self.url = f"postgresql://{self.user}@127.0.0.1:{self.port}/{DATABASE}"
            self._wait_ready(_with_dbname(self.url, "postgres"))
            _create_database(self.url, DATABASE)
        except BaseException:
            self.stop()
            raise
        return self.url

    def _start_on_free_port(self):
        for _ in range(_PORT_TRIES):
            port = free_port()
            # Options on the command line, not in postgresql.conf: nothing to edit in a directory root may not own.
            opts = ["-c", f"port={port}", "-c", "listen_addresses=127.0.0.1",
                    "-c", f"unix_socket_directories={self.tmpdir}", "-c", "unix_socket_permissions=0700",
                    "-c", "fsync=off"]
            proc = self._run("pg_ctl", "start", "-D", self.datadir, "-l", Path(self.tmpdir) / "server.log",
                             "-w", "-t", START_TIMEOUT_S, "-o", shlex.join(opts), timeout=START_TIMEOUT_S + 10)
            if proc.returncode == 0:
                self.port = port
                return
            if "already in use" not in self._log_tail():
                raise PGClusterError(f"pg_ctl start exited {proc.returncode}: {proc.stderr.strip()}"
                                     f"{self._log_tail()}")
        raise PGClusterError(f"no free port after {_PORT_TRIES} tries{self._log_tail()}")

    def _wait_ready(self, url):
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with psycopg.connect(url, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as e:
                # pg_ctl -w has seen it accept connections: only a server still starting is worth waiting for
                # (a refused login, say, would fail the same way until the deadline).
                if not any(m in str(e) for m in _NOT_YET) or time.monotonic() > deadline:
                    raise PGClusterError(f"cannot connect to the private server on port {self.port}: {e}"
                                         f"{self._log_tail()}") from None
                time.sleep(0.05)

    def stop(self):
        """Stop the server (fast: open sessions are cut off) and remove the temporary directory. Idempotent."""
        if self.tmpdir is None:
            return
        try:
            if self.datadir and (Path(self.datadir) / "postmaster.pid").exists():
                proc = self._run("pg_ctl", "stop", "-D", self.datadir, "-m", "fast", "-w", "-t", 30, timeout=40)
                if proc.returncode != 0:
                    self._run("pg_ctl", "stop", "-D", self.datadir, "-m", "immediate", "-w", timeout=40)
        finally:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = self.datadir = self.url = None
            atexit.unregister(self.stop)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
