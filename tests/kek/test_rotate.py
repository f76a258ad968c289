"""`janua kek rotate` (tools/kek.py, docs/api.md "KEK rotation"): a registry with devices, a tenant CA, token
keys and a webhook is re-sealed under a new KEK; a verifier with the new KEK alone authenticates the devices
over binary auth and signs tokens with the same (re-sealed) key; the old KEK alone opens nothing; a rotation
killed after its first batch leaves a registry that OLD and NEW together open, and a second run finishes it."""

import base64
import fcntl
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import AdminTenant, AuthDevice, FakeClock
from tools.cli import main
from tools.kek import sealed_columns, verify
from verifier import keys
from verifier.app import create_app
from verifier.appkeys import SEALER, STORAGE
from verifier.mqtt.broker import ADMIN_SEAL_ID
from verifier.binauth.core import OK
from verifier.config import Config
from verifier.errors import CryptoError

OLD = bytes(range(32))
NEW = bytes(range(50, 82))
ROOT = Path(__file__).resolve().parents[2]
N_DEVICES = 12


def _config(db, kek, old=()):
    return Config(db_path=str(db), kek=kek, old_keks=tuple(old), clock=FakeClock(), http_port=0, udp_port=None,
                  dtls_port=None, notify_tick_s=None, notify_private_targets=True)


def _b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


@pytest.fixture
async def registry(tmp_path, aiohttp_client):
    """A registry sealed under OLD: 12 devices, a tenant CA, a token key (a device token signed), a webhook.
    What the test needs to recognise them afterwards."""
    db = tmp_path / "janua.db"
    (tmp_path / "old.kek").write_text(OLD.hex() + "\n")
    cfg = _config(db, OLD)
    client = await aiohttp_client(create_app(cfg))
    tenant = AdminTenant(client.server.app, "acme", cfg.clock)
    devices = [AuthDevice(h, m, FakeClock()) for h, m in tenant.provision([{}] * N_DEVICES)]
    r = await client.get("/v1/ca", headers=tenant.headers)
    assert r.status == 200, await r.text()
    ca = await r.text()
    r = await client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"}, headers=tenant.headers)
    assert r.status in (200, 201), await r.text()
    hook = await r.json()
    r = await client.post("/v1/auth/device/token", json={"auth": devices[0].auth()})
    assert r.status == 200, await r.text()
    kid = json.loads(_b64d((await r.json())["token"].split(".")[0]))["kid"]
    app = client.server.app                         # the managed broker's row, as `janua mqtt config` writes it
    app[STORAGE].set_mqtt_broker({"config_dir": str(tmp_path / "b"), "host": "127.0.0.1", "dynsec_port": 1884,
                                  "admin_user": "janua-admin", "tenant_ports": "{}", "updated": 0,
                                  "sealed_admin_password": app[SEALER].seal(b"pw", ADMIN_SEAL_ID, "broker")})
    await client.close()
    return {"db": db, "tmp": tmp_path, "devices": devices, "ca": ca, "hook": hook, "kid": kid}


def _rotate(reg, capsys, *extra):
    rc = main(["kek", "rotate", "--db", str(reg["db"]), "--kek-file", str(reg["tmp"] / "old.kek"),
               "--new-kek-file", str(reg["tmp"] / "new.kek"), *extra])
    return rc, capsys.readouterr()


def _rows(db):
    """{(table, key): (sealed, aad)} of every sealed value in the file."""
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    have = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    out = {}
    for table, key, col, aad in sealed_columns():
        if table in have:
            for r in con.execute(f"SELECT * FROM {table}"):
                out[(table, r[key])] = (bytes(r[col]), aad(r))
    con.close()
    return out


def _opens(sealer, sealed, aad):
    try:
        sealer.unseal(sealed, *aad)
        return True
    except CryptoError:
        return False


async def _binauth(client, dev):
    req = dev.request()
    r = await client.post("/v1/binauth", data=req)
    return dev.reply(req, await r.read())


@pytest.mark.sqlite_only   # janua kek rotate works on SQLite files only (docs/operations.md 5b)
async def test_rotate_reseals_everything_and_the_new_kek_alone_serves(registry, capsys, aiohttp_client):
    before = _rows(registry["db"])
    assert {t for t, _ in before} == {"devices", "x509_ca", "token_keys", "notify_webhooks", "mqtt_broker"}
    assert sum(t == "devices" for t, _ in before) == N_DEVICES
    rc, out = _rotate(registry, capsys)
    assert rc == 0, out.err
    new_file = registry["tmp"] / "new.kek"
    assert new_file.stat().st_mode & 0o777 == 0o600
    assert len(bytes.fromhex(new_file.read_text().strip())) == 32
    assert f"devices: {N_DEVICES} rows, {N_DEVICES} re-sealed, 0 already under the new KEK" in out.out
    assert "token_keys: 1 rows, 1 re-sealed" in out.out and "notify_webhooks: 1 rows, 1 re-sealed" in out.out
    assert f"--kek-file {new_file}" in out.out and "destroy" in out.out
    new = bytes.fromhex(new_file.read_text().strip())
    after = _rows(registry["db"])
    assert after.keys() == before.keys()
    for k, (sealed, aad) in after.items():
        assert sealed != before[k][0]
        assert _opens(keys.Sealer(new), sealed, aad), k
        assert not _opens(keys.Sealer(OLD), sealed, aad), k         # the old KEK alone opens nothing
        assert keys.Sealer(new).unseal(sealed, *aad) == keys.Sealer(OLD).unseal(before[k][0], *before[k][1])
    # the webhook secret shown at creation is what now opens under NEW
    ((wk, (sealed, aad)),) = [(k, v) for k, v in after.items() if k[0] == "notify_webhooks"]
    assert base64.urlsafe_b64encode(keys.Sealer(new).unseal(sealed, *aad)).rstrip(b"=").decode() == \
        registry["hook"]["secret"]

    client = await aiohttp_client(create_app(_config(registry["db"], new)))
    for dev in registry["devices"]:
        rep = await _binauth(client, dev)
        assert rep["status"] == OK and rep["authenticated"]
    r = await client.post("/v1/auth/device/token", json={"auth": registry["devices"][1].auth()})
    assert r.status == 200, await r.text()
    assert json.loads(_b64d((await r.json())["token"].split(".")[0]))["kid"] == registry["kid"]   # same key
    await client.close()

    client = await aiohttp_client(create_app(_config(registry["db"], OLD)))
    rep = await _binauth(client, registry["devices"][2])
    assert rep["status"] != OK
    await client.close()

    # a second run has nothing left to do, and NEW is kept as it is
    rc, out = _rotate(registry, capsys)
    assert rc == 0 and f"devices: {N_DEVICES} rows, 0 re-sealed, {N_DEVICES} already" in out.out
    assert bytes.fromhex(new_file.read_text().strip()) == new


@pytest.mark.sqlite_only   # janua kek rotate works on SQLite files only (docs/operations.md 5b)
async def test_a_rotation_killed_after_its_first_batch_opens_with_both_and_a_rerun_finishes(
        registry, capsys, aiohttp_client):
    (registry["tmp"] / "new.kek").write_text(NEW.hex() + "\n")
    os.chmod(registry["tmp"] / "new.kek", 0o600)
    env = dict(os.environ, JANUA_KEK_ROTATE_BATCH="5", JANUA_KEK_ROTATE_TEST_PAUSE="60")
    env.pop("JANUA_KEK", None)
    env.pop("JANUA_KEK_OLD", None)
    proc = subprocess.Popen([sys.executable, "-m", "tools", "kek", "rotate", "--db", str(registry["db"]),
                             "--kek-file", str(registry["tmp"] / "old.kek"),
                             "--new-kek-file", str(registry["tmp"] / "new.kek")],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line == "janua kek: devices: 5/12 rows (re-sealed 5) committed\n", (line, proc.stderr.read())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    rows = _rows(registry["db"])
    under_new = [k for k, v in rows.items() if _opens(keys.Sealer(NEW), *v)]
    under_old = [k for k, v in rows.items() if _opens(keys.Sealer(OLD), *v)]
    assert len(under_new) == 5 and all(t == "devices" for t, _ in under_new)
    assert len(under_old) == len(rows) - 5
    both = keys.Sealer(NEW, [OLD])
    assert all(_opens(both, *v) for v in rows.values())
    con = sqlite3.connect(registry["db"])
    con.row_factory = sqlite3.Row
    tables = [t for t in sealed_columns() if t[0] != "edge_devices"]
    left = verify(con, tables, keys.Sealer(NEW))          # what the final check would refuse
    con.close()
    assert sorted(t for t, _ in left) == ["devices"] * 7 + ["mqtt_broker", "notify_webhooks", "token_keys",
                                                            "x509_ca"]

    # a verifier started in between (--kek-file NEW --old-kek-file OLD) serves every device
    client = await aiohttp_client(create_app(_config(registry["db"], NEW, [OLD])))
    for dev in registry["devices"]:
        rep = await _binauth(client, dev)
        assert rep["status"] == OK and rep["authenticated"]
    await client.close()

    rc, out = _rotate(registry, capsys)
    assert rc == 0, out.err
    assert "devices: 12 rows, 7 re-sealed, 5 already under the new KEK" in out.out
    assert all(_opens(keys.Sealer(NEW), *v) and not _opens(keys.Sealer(OLD), *v)
               for v in _rows(registry["db"]).values())


@pytest.mark.sqlite_only   # janua kek rotate works on SQLite files only (docs/operations.md 5b)
def test_refuses_while_a_verifier_holds_the_lock(registry, capsys):
    lock = open(str(registry["db"]) + ".lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        rc, out = _rotate(registry, capsys)
    finally:
        lock.close()
    assert rc == 1 and "is in use by another verifier" in out.err
    assert not (registry["tmp"] / "new.kek").exists() or all(
        _opens(keys.Sealer(OLD), *v) for v in _rows(registry["db"]).values())
    rc, out = _rotate(registry, capsys)                 # the lock file is there but free: it runs
    assert rc == 0, out.err


@pytest.mark.sqlite_only   # janua kek rotate works on SQLite files only (docs/operations.md 5b)
def test_wrong_old_kek_changes_nothing(registry, capsys):
    (registry["tmp"] / "old.kek").write_text(bytes(range(7, 39)).hex())
    before = _rows(registry["db"])
    rc, out = _rotate(registry, capsys)
    assert rc == 1 and "opens under neither KEK" in out.err
    assert _rows(registry["db"]) == before


def test_an_edge_file_is_rotated_too(tmp_path, capsys):
    from verifier.edge.store import EdgeStore
    db = tmp_path / "janua-edge.db"
    store = EdgeStore(str(db))
    ids = [bytes([i]) * 8 for i in range(1, 4)]
    store.put_devices([(d, "t1", {"id": d.hex()}, keys.Sealer(OLD).seal(b"k" * 32, d, "t1"), 0) for d in ids])
    store.close()
    (tmp_path / "old.kek").write_text(OLD.hex())
    (tmp_path / "new.kek").write_text(NEW.hex())
    rc, out = _rotate({"db": db, "tmp": tmp_path}, capsys)
    assert rc == 0, out.err
    assert "edge_devices: 3 rows, 3 re-sealed, 0 already under the new KEK" in out.out
    rows = _rows(db)
    assert sorted(k for _, k in rows) == ids
    assert all(keys.Sealer(NEW).unseal(*v[:1], *v[1]) == b"k" * 32 and not _opens(keys.Sealer(OLD), *v)
               for v in rows.values())
