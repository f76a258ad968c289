"""Files that hold secrets or sealed secrets come out 0600 whatever the umask and whatever was there before,
and a secret file is never written into an existing one: the registry and its -wal/-shm, the edge's own
file, `<db>.token` of `janua serve --dev`, `janua ota keygen`'s key, and verifier/secretfile itself."""

import os
import stat

import pytest

from verifier import secretfile
from tools.errors import CLIError


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_022():
    """The usual permissive umask (files 0644 unless the code says otherwise)."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _use_registry(path):
    from verifier.registry import core as registry
    from verifier.store import SQLiteStorage
    st = SQLiteStorage(str(path))
    registry.create_tenant(st, "t", 1_767_225_600)       # a write: the -wal and -shm exist while it is open
    return st


def test_registry_db_wal_and_shm_are_created_0600(tmp_path, umask_022):
    db = tmp_path / "janua.db"
    st = _use_registry(db)
    try:
        assert {n: mode(tmp_path / n) for n in ("janua.db", "janua.db-wal", "janua.db-shm")} == {
            "janua.db": 0o600, "janua.db-wal": 0o600, "janua.db-shm": 0o600}
    finally:
        st.close()


def test_registry_left_world_readable_by_an_older_release_is_made_0600(tmp_path, umask_022):
    db = tmp_path / "janua.db"
    _use_registry(db).close()             # a clean close removes -wal and -shm: leave 0644 ones as a crash would
    for n in ("janua.db", "janua.db-wal", "janua.db-shm"):
        (tmp_path / n).touch()
        os.chmod(tmp_path / n, 0o644)
    from verifier.store import SQLiteStorage
    st = SQLiteStorage(str(db))
    try:
        assert {n: mode(tmp_path / n) for n in ("janua.db", "janua.db-wal", "janua.db-shm")} == {
            "janua.db": 0o600, "janua.db-wal": 0o600, "janua.db-shm": 0o600}
    finally:
        st.close()


def test_edge_db_wal_and_shm_are_created_0600(tmp_path, umask_022):
    from verifier.edge.store import EdgeStore
    st = EdgeStore(str(tmp_path / "janua-edge.db"))
    try:
        st.set_meta({"synced_at": 1})
        assert {n: mode(tmp_path / n) for n in ("janua-edge.db", "janua-edge.db-wal", "janua-edge.db-shm")} == {
            "janua-edge.db": 0o600, "janua-edge.db-wal": 0o600, "janua-edge.db-shm": 0o600}
    finally:
        st.close()


def test_dev_token_never_lands_in_an_existing_world_readable_file(tmp_path, umask_022):
    from verifier.serve import ensure_dev_tenant
    stale = tmp_path / "janua.db.token"
    stale.write_text("jna_stale\n")
    os.chmod(stale, 0o644)
    token, path = ensure_dev_tenant(str(tmp_path / "janua.db"))
    assert path == stale and mode(path) == 0o600
    assert path.read_text() == token + "\n" and token.startswith("jna_") and token != "jna_stale"
    assert sorted(os.listdir(tmp_path)) == ["janua.db", "janua.db.token"]     # no temp file left behind


def test_ota_signing_key_is_0600_and_never_overwritten(tmp_path, umask_022):
    from tools.ota import keygen
    key, pub, _ = keygen(tmp_path)
    assert mode(key) == 0o600 and mode(pub) == 0o644        # the public half is not a secret
    before = key.read_bytes()
    with pytest.raises(CLIError, match="exists"):
        keygen(tmp_path)
    assert key.read_bytes() == before


def test_secret_file_refuses_an_existing_file_and_keeps_it(tmp_path, umask_022):
    p = tmp_path / "m.jsonl"
    p.write_bytes(b"earlier secrets\n")
    with pytest.raises(FileExistsError):
        secretfile.write_new(p, b"new secrets\n")
    assert p.read_bytes() == b"earlier secrets\n"


def test_secret_file_never_follows_a_planted_symlink(tmp_path, umask_022):
    target = tmp_path / "elsewhere"
    (tmp_path / "m.jsonl").symlink_to(target)
    with pytest.raises(FileExistsError):
        secretfile.write_new(tmp_path / "m.jsonl", b"secret")
    assert not target.exists()


def test_secret_file_is_0600_even_under_a_umask_that_takes_owner_bits(tmp_path):
    old = os.umask(0o277)                 # would make 0600 into 0400 without the fchmod
    try:
        secretfile.write_new(tmp_path / "k", b"secret")
    finally:
        os.umask(old)
    assert mode(tmp_path / "k") == 0o600


def test_unique_secret_file_takes_the_next_free_number(tmp_path):
    base = tmp_path / "d.csv.manifest.jsonl"
    base.write_bytes(b"run 1\n")
    (tmp_path / "d.csv.manifest-2.jsonl").write_bytes(b"run 2\n")
    f, path = secretfile.open_unique(base)
    with f:
        f.write(b"run 3\n")
    assert path == tmp_path / "d.csv.manifest-3.jsonl" and mode(path) == 0o600
    assert base.read_bytes() == b"run 1\n" and (tmp_path / "d.csv.manifest-2.jsonl").read_bytes() == b"run 2\n"


def test_broker_key_and_dynsec_never_inherit_a_stale_temp_files_mode(tmp_path, umask_022):
    """`janua mqtt config` writes each file to <name>.tmp and renames it: a <name>.tmp left 0644 by an
    interrupted run must not make broker.key or dynsec.json (the broker admin password hash) 0644."""
    from verifier.registry import core as registry
    from verifier.keys import Sealer
    from verifier.mqtt.broker import tenant_short_id, write_config
    from verifier.store import SQLiteStorage
    st = SQLiteStorage(str(tmp_path / "janua.db"))
    try:
        tenant = registry.create_tenant(st, "t", 1_767_225_600)
        out = tmp_path / "mqtt"
        tdir = out / "tenants" / tenant_short_id(tenant["id"])
        tdir.mkdir(parents=True)
        for stale in (out / "dynsec.json.tmp", tdir / "broker.key.tmp"):
            stale.write_bytes(b"")
            os.chmod(stale, 0o644)
        write_config(st, Sealer(bytes(range(32))), out, 1_767_225_600)
    finally:
        st.close()
    assert {p: mode(p) for p in (out / "dynsec.json", tdir / "broker.key")} == {
        out / "dynsec.json": 0o600, tdir / "broker.key": 0o600}


def test_registry_created_under_a_strict_umask_is_still_writable(tmp_path):
    old = os.umask(0o277)
    try:
        _use_registry(tmp_path / "janua.db").close()
    finally:
        os.umask(old)
    assert mode(tmp_path / "janua.db") == 0o600
