"""verifier/store_backup.py and verifier/store_lock.py in process, on tmp_path SQLite files: the backup is one
snapshot while another connection writes between its steps, its file is new, 0600 and self-contained, it
never replaces a file; restore checks the backup first, refuses an existing target (or keeps it aside with
--force) and a target whose writer lock is held. The `janua` command lines are driven through tools.cli.main."""

import os
import sqlite3
import stat

import pytest

from tools.cli import main
from verifier import store_backup, store_lock
from verifier.registry import core as registry
from verifier.store import SQLiteStorage

T0 = 1_767_225_600
NO_TABLES = "it has no table tenants, tokens, devices, auth_state, audit"


def make_registry(path, tenants=3, audit_rows=3000):
    """A registry with `tenants` tenants and enough audit rows to span many pages (about 180 of 4 KiB)."""
    st = SQLiteStorage(str(path))
    for i in range(tenants):
        registry.create_tenant(st, f"t{i}", T0)
    st.add_audit([(T0, None, "admin", None, "test", "fill", None, None, "ok", None, "x" * 200)
                  for _ in range(audit_rows)])
    return st


def count(path, table):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


def test_backup_is_one_snapshot_while_another_connection_writes_between_steps(tmp_path):
    src = tmp_path / "janua.db"
    writer = make_registry(src)
    seen = []

    def progress(done, total):
        seen.append((done, total))
        if len(seen) <= 12:          # a commit between two steps (not forever: without the snapshot the
            registry.create_tenant(writer, f"during-{len(seen)}", T0)   # copy restarts after each one)

    made = store_backup.backup(src, tmp_path / "b.db", step_pages=8, progress=progress)
    writer.close()
    assert len(seen) > 12                                        # many steps, 12 of them followed by a commit
    dones = [d for d, _ in seen]
    assert dones == sorted(dones) and len(set(dones)) == len(dones)   # never restarted
    assert seen[-1][0] == seen[-1][1]
    assert (made.tenants, made.devices) == (3, 0)                # the snapshot of the first step
    assert count(tmp_path / "b.db", "tenants") == 3
    assert count(src, "tenants") == 15                           # the writes all landed in the source
    assert count(tmp_path / "b.db", "audit") == 3003                # the fill, and one row per tenant created


def test_backup_file_is_new_0600_self_contained_and_leaves_no_tmp(tmp_path):
    make_registry(tmp_path / "janua.db", audit_rows=10).close()
    old = os.umask(0)
    try:
        made = store_backup.backup(tmp_path / "janua.db", tmp_path / "b.db")
    finally:
        os.umask(old)
    out = tmp_path / "b.db"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert made.size == out.stat().st_size and made.size % 4096 == 0
    assert out.read_bytes()[18:20] == b"\x01\x01"                # rollback journal, not WAL: one file
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("b.db")) == ["b.db"]


@pytest.mark.parametrize("existing", ["file", "symlink", "tmp"])
def test_backup_never_overwrites(tmp_path, existing):
    make_registry(tmp_path / "janua.db", audit_rows=10).close()
    out = tmp_path / "b.db"
    if existing == "file":
        out.write_bytes(b"keep me")
    elif existing == "symlink":
        out.symlink_to(tmp_path / "elsewhere")
    else:
        (tmp_path / "b.db.tmp").write_bytes(b"half a backup")
    with pytest.raises(store_backup.BackupError) as e:
        store_backup.backup(tmp_path / "janua.db", out)
    if existing == "file":
        assert str(e.value) == f"{out} exists: a backup never overwrites a file"
        assert out.read_bytes() == b"keep me"
    elif existing == "symlink":
        assert not (tmp_path / "elsewhere").exists() and out.is_symlink()
    else:
        assert str(e.value) == f"{out}.tmp exists, left by a backup that did not finish?"
        assert not out.exists() and (tmp_path / "b.db.tmp").read_bytes() == b"half a backup"


def test_backup_of_a_file_that_is_not_a_registry_is_refused(tmp_path):
    plain = tmp_path / "other.db"
    conn = sqlite3.connect(plain)
    conn.execute("CREATE TABLE devices (x)")
    conn.close()
    with pytest.raises(store_backup.BackupError) as e:
        store_backup.backup(plain, tmp_path / "b.db")
    assert str(e.value) == f"{plain} is not a janua registry (it has no table tenants, tokens, auth_state, audit)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


def test_cli_backup_prints_size_devices_time_and_the_kek_line(tmp_path, capsys):
    make_registry(tmp_path / "janua.db", audit_rows=200).close()
    (tmp_path / "janua.db.kek").write_text("00" * 32 + "\n")
    assert main(["backup", "--db", str(tmp_path / "janua.db"), "--out", str(tmp_path / "b.db"),
                 "--step-pages", "4"]) == 0
    out, err = capsys.readouterr()
    size = (tmp_path / "b.db").stat().st_size
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"janua backup: wrote {tmp_path / 'b.db'}: {size} bytes, 0 devices (3 tenants) in ")
    assert lines[0].endswith(" s")
    assert lines[1] == (f"janua backup: the KEK is not in the backup: keep the KEK file ({tmp_path}/janua.db.kek) "
                        "safe separately; a restore is useless without it")
    pages = size // 4096
    assert err.splitlines()[-1] == f"janua backup: 100% ({pages}/{pages} pages)"

    assert main(["backup", "--db", str(tmp_path / "janua.db"), "--out", str(tmp_path / "b.db")]) == 1
    _, err = capsys.readouterr()
    assert err == f"janua: {tmp_path / 'b.db'} exists: a backup never overwrites a file\njanua: hint: pick a new name for --out\n"


def test_restore_into_a_new_file_keeps_every_row(tmp_path):
    make_registry(tmp_path / "janua.db", audit_rows=50).close()
    store_backup.backup(tmp_path / "janua.db", tmp_path / "b.db")
    target = tmp_path / "restored.db"
    made = store_backup.restore(tmp_path / "b.db", target)
    assert (made.tenants, made.devices, made.kept) == (3, 0, None)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert count(target, "audit") == 53                          # 50, and one row per tenant created
    assert not (tmp_path / "restored.db.tmp").exists()
    st = SQLiteStorage(str(target))                  # the verifier's store opens it (WAL again)
    assert sorted(t["name"] for t in st.list_tenants()) == ["t0", "t1", "t2"]
    st.close()


def test_restore_refuses_an_existing_file_and_force_keeps_it_with_its_wal(tmp_path, capsys):
    make_registry(tmp_path / "janua.db", tenants=1, audit_rows=10).close()
    store_backup.backup(tmp_path / "janua.db", tmp_path / "b.db")
    target = tmp_path / "live.db"
    live = make_registry(target, tenants=2, audit_rows=5)       # open: its -wal and -shm are there
    live.close()
    before = target.read_bytes()
    assert main(["restore", "--backup", str(tmp_path / "b.db"), "--db", str(target)]) == 1
    _, err = capsys.readouterr()
    assert err == (f"janua: {target} exists: restore never replaces a registry\n"
                   f"janua: hint: --force keeps the old one as {target}.before-restore-<time>\n")
    assert target.read_bytes() == before

    (tmp_path / "live.db-wal").write_bytes(b"wal of the old file")
    made = store_backup.restore(tmp_path / "b.db", target, force=True, now=lambda: T0 + 61)
    kept = tmp_path / "live.db.before-restore-20260101T000101Z"
    assert made.kept == kept
    assert kept.read_bytes() == before
    assert (tmp_path / "live.db.before-restore-20260101T000101Z-wal").read_bytes() == b"wal of the old file"
    assert not (tmp_path / "live.db-wal").exists()               # no stale WAL beside the restored file
    assert count(target, "tenants") == 1


def test_restore_refuses_a_stale_wal_without_its_file(tmp_path):
    make_registry(tmp_path / "janua.db", tenants=1, audit_rows=10).close()
    store_backup.backup(tmp_path / "janua.db", tmp_path / "b.db")
    (tmp_path / "new.db-wal").write_bytes(b"an alien wal")
    with pytest.raises(store_backup.BackupError) as e:
        store_backup.restore(tmp_path / "b.db", tmp_path / "new.db")
    assert str(e.value) == f"{tmp_path / 'new.db'}-wal exists: restore never replaces a registry"
    assert not (tmp_path / "new.db").exists()


@pytest.mark.parametrize("kind, message", [
    ("text", "{p} is not a SQLite database, or is damaged (file is not a database)"),
    ("foreign", "{p} is not a janua registry (" + NO_TABLES + ")"),
    ("damaged", "{p} is not a SQLite database, or is damaged (database disk image is malformed)"),
    ("missing", "no backup at {p}"),
])
def test_restore_refuses_what_is_not_a_janua_backup(tmp_path, kind, message):
    p = tmp_path / "b.db"
    if kind == "text":
        p.write_bytes(b"JANUA_KEK=" + b"00" * 32 + b"\n" * 100)
    elif kind == "foreign":
        conn = sqlite3.connect(p)
        conn.execute("CREATE TABLE other (x)")
        conn.close()
    elif kind == "damaged":
        make_registry(tmp_path / "janua.db", audit_rows=300).close()
        store_backup.backup(tmp_path / "janua.db", p)
        data = bytearray(p.read_bytes())
        data[5 * 4096:5 * 4096 + 400] = b"\x55" * 400           # a btree page overwritten
        p.write_bytes(bytes(data))
    with pytest.raises(store_backup.BackupError) as e:
        store_backup.restore(p, tmp_path / "target.db")
    assert str(e.value) == message.format(p=p)
    assert not (tmp_path / "target.db").exists() and not (tmp_path / "target.db.tmp").exists()


def test_restore_refuses_while_the_writer_lock_is_held(tmp_path):
    make_registry(tmp_path / "janua.db", tenants=1, audit_rows=10).close()
    store_backup.backup(tmp_path / "janua.db", tmp_path / "b.db")
    target = tmp_path / "served.db"
    with store_lock.acquire(target):
        with pytest.raises(store_backup.BackupError) as e:
            store_backup.restore(tmp_path / "b.db", target, force=True)
    assert str(e.value) == f"{target} is in use by a verifier (pid {os.getpid()} holds {target}.lock)"
    assert not target.exists()
    store_backup.restore(tmp_path / "b.db", target)             # released: it goes through
    assert count(target, "tenants") == 1


def test_backup_never_overwrites_a_file_that_appears_during_the_copy(tmp_path):
    make_registry(tmp_path / "janua.db", audit_rows=300).close()
    out = tmp_path / "b.db"

    def progress(done, total):
        if not out.exists():
            out.write_bytes(b"made by someone else meanwhile")

    with pytest.raises(store_backup.BackupError) as e:
        store_backup.backup(tmp_path / "janua.db", out, step_pages=4, progress=progress)
    assert str(e.value) == f"{out} appeared while the copy was made: not overwritten (the copy is removed)"
    assert out.read_bytes() == b"made by someone else meanwhile"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("b.db")) == ["b.db"]


def test_backup_has_what_is_committed_but_only_in_the_wal(tmp_path):
    src = tmp_path / "janua.db"
    make_registry(src, tenants=1, audit_rows=10).close()
    live = sqlite3.connect(src, isolation_level=None)            # stays open, as a running verifier does
    live.execute("PRAGMA wal_autocheckpoint=0")
    live.execute("INSERT INTO tenants (id, name, created, policy) VALUES ('tn_wal', 'in-wal', 0, '{}')")
    assert (tmp_path / "janua.db-wal").stat().st_size > 0
    made = store_backup.backup(src, tmp_path / "b.db")
    live.close()
    assert made.tenants == 2
    assert count(tmp_path / "b.db", "tenants") == 2
