"""The one-writer lock (verifier/store_lock.py): in process, and against real `janua serve` subprocesses
(tools.demo.Verifier): a second `janua serve` on a file in use refuses with one line naming the file and the
holder's pid, and the first one goes on serving; a SIGKILLed verifier's lock file does not block the next
one; the edge verifier locks its own file; `janua restore` refuses a file a verifier holds."""

import os
import signal
import stat

import pytest

from tests.backup.live import OK, janua, provision, serve, udp_auth
from tools.demo import Verifier
from verifier import store_lock


def test_writer_lock_is_exclusive_names_its_pid_and_is_0600(tmp_path):
    db = tmp_path / "janua.db"
    old = os.umask(0)
    try:
        first = store_lock.acquire(db)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "janua.db.lock").stat().st_mode) == 0o600
    assert (tmp_path / "janua.db.lock").read_text() == f"{os.getpid()}\n"
    with pytest.raises(store_lock.LockHeld) as e:
        store_lock.acquire(db)                       # another open file description: flock says no
    assert e.value.pid == os.getpid()
    assert str(e.value) == (f"{db} is in use by another verifier (pid {os.getpid()} holds {db}.lock): "
                            "one verifier per SQLite file")
    first.close()
    store_lock.acquire(db).close()                   # released by close
    assert store_lock.acquire(":memory:") is None


def test_writer_lock_overwrites_a_stale_pid(tmp_path):
    (tmp_path / "janua.db.lock").write_text("999999999999\n")
    with store_lock.acquire(tmp_path / "janua.db"):
        assert (tmp_path / "janua.db.lock").read_text() == f"{os.getpid()}\n"


def test_second_serve_on_the_same_db_refuses_with_one_line(tmp_path):
    v = Verifier(tmp_path)
    try:
        r = serve(v.db)
        assert r.returncode == 1
        assert r.stdout == ""                                     # no token, no listen line
        assert r.stderr == (f"janua: {v.db} is in use by another verifier (pid {v.proc.pid} holds {v.db}.lock): "
                            "one verifier per SQLite file\n")
        assert v.proc.poll() is None
        d = provision(v, "SN-1")                                  # the first one still serves
        assert udp_auth(v, d, d.request()) == (OK, True)
        r = janua("restore", "--backup", str(v.db), "--db", str(v.db), "--force")
        assert r.returncode == 1
        assert r.stderr == (f"janua: {v.db} is in use by a verifier (pid {v.proc.pid} holds {v.db}.lock)\n"
                            "janua: hint: stop that verifier before restoring\n")
    finally:
        v.stop()


def test_lock_of_a_killed_verifier_does_not_block_the_next(tmp_path):
    v = Verifier(tmp_path)
    d = provision(v, "SN-1")
    os.kill(v.proc.pid, signal.SIGKILL)
    v.proc.wait(10)
    assert (tmp_path / "janua.db.lock").read_text() == f"{v.proc.pid}\n"     # left behind, stale
    v2 = Verifier(tmp_path)
    try:
        assert (tmp_path / "janua.db.lock").read_text() == f"{v2.proc.pid}\n"
        assert udp_auth(v2, d, d.request()) == (OK, True)
    finally:
        v2.stop()


def test_edge_verifier_holds_the_lock_of_its_own_file(tmp_path):
    (tmp_path / "edge.token").write_text("jna_" + "x" * 43 + "\n")
    db = tmp_path / "edge.db"
    with store_lock.acquire(db):
        r = janua("serve", "--edge", "--upstream", "http://127.0.0.1:9", "--upstream-token-file",
                  str(tmp_path / "edge.token"), "--db", str(db), "--http-port", "0", "--udp-port", "0", timeout=60)
    assert r.returncode == 1
    assert r.stderr == (f"janua: {db} is in use by another verifier (pid {os.getpid()} holds {db}.lock): "
                        "one verifier per SQLite file\n")
    assert not db.exists()
