"""Scoped admin tokens: the scenarios of issue #14, the 401/403 split, the token table's migration and
`janua tenant token --role` / `tokens` (docs/api.md "Roles")."""

import sqlite3

import pytest

from tests.support import AdminTenant
from tools.cli import main as cli_main
from verifier.appkeys import STORAGE
from verifier.registry import core as registry
from verifier.store import SQLiteStorage


@pytest.fixture
async def acme(client, clock):
    app = client.server.app
    tenant = AdminTenant(app, "acme", clock)
    (dev, _), = tenant.provision([{}])

    def token(role):
        _, tok = registry.issue_token(app[STORAGE], tenant.id, clock(), role=role)
        return {"Authorization": f"Bearer {tok}"}
    return client, dev, token


async def test_a_viewer_lists_devices_but_cannot_suspend_one(acme):
    client, dev, token = acme
    viewer = token("viewer")
    r = await client.get("/v1/devices", headers=viewer)
    assert r.status == 200 and [d["device_id"] for d in (await r.json())["devices"]] == [dev]
    r = await client.post(f"/v1/devices/{dev}/lifecycle", json={"action": "suspend"}, headers=viewer)
    assert r.status == 403
    assert await r.json() == {"error": "forbidden", "message": "this route needs a token with role operator "
                                                              "(or admin); this token's role is viewer"}
    r = await client.get(f"/v1/devices/{dev}", headers=viewer)
    assert (await r.json())["status"] == "active"       # nothing changed
    r = await client.post(f"/v1/devices/{dev}/lifecycle", json={"action": "suspend"}, headers=token("operator"))
    assert r.status == 200 and (await r.json())["status"] == "suspended"


async def test_a_factory_token_provisions_but_cannot_list_the_audit(acme):
    client, _, token = acme
    factory = token("factory")
    r = await client.post("/v1/devices", json={"serial_number": "SN-F1"}, headers=factory)
    assert r.status == 201 and len((await r.json())["master_secret"]) == 64
    r = await client.get("/v1/audit", headers=factory)
    assert r.status == 403 and (await r.json())["error"] == "forbidden"
    r = await client.get("/v1/devices", headers=factory)
    assert r.status == 403


async def test_an_edge_token_syncs_but_cannot_provision(acme):
    client, dev, token = acme
    edge = token("edge")
    r = await client.get("/v1/edge/snapshot", params={"since": "0"}, headers=edge)
    assert r.status == 200 and [d["device_id"] for d in (await r.json())["devices"]] == [dev]
    r = await client.post("/v1/devices", json={"serial_number": "SN-E1"}, headers=edge)
    assert r.status == 403
    assert (await r.json())["message"] == "this route needs a token with role factory (or admin); this token's role is edge"


async def test_no_or_an_invalid_token_is_still_401_not_403(acme):
    client, _, _ = acme
    r = await client.get("/v1/devices")
    assert r.status == 401 and (await r.json())["error"] == "unauthorized"
    r = await client.get("/v1/devices", headers={"Authorization": "Bearer jna_" + "x" * 43})
    assert r.status == 401


async def test_a_revoked_narrow_token_is_401(acme, clock):
    client, _, _ = acme
    app = client.server.app
    tid = app[STORAGE].get_tenant_by_name("acme")["id"]
    token_id, tok = registry.issue_token(app[STORAGE], tid, clock(), role="viewer")
    registry.revoke_token(app[STORAGE], tid, token_id, clock())
    r = await client.get("/v1/devices", headers={"Authorization": f"Bearer {tok}"})
    assert r.status == 401


def test_an_unknown_role_is_refused_at_issue(tmp_path):
    st = SQLiteStorage(str(tmp_path / "j.db"))
    t = registry.create_tenant(st, "acme", 1_767_225_600)
    with pytest.raises(Exception, match="role must be one of viewer, operator, admin, factory, edge"):
        registry.issue_token(st, t["id"], 1_767_225_600, role="root")
    st.close()


def test_tokens_made_before_roles_are_admin_after_the_migration(tmp_path):
    path = str(tmp_path / "old.db")
    db = sqlite3.connect(path)      # the token table as it was before the role column
    db.executescript("""
        CREATE TABLE tenants (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created INTEGER NOT NULL,
                              policy TEXT NOT NULL);
        CREATE TABLE tokens (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
                             hash BLOB NOT NULL UNIQUE, label TEXT, created INTEGER NOT NULL, revoked_at INTEGER);
        INSERT INTO tenants VALUES ('t1', 'acme', 1, '{}');
        INSERT INTO tokens VALUES ('tok_old', 't1', x'00', 'legacy', 1, NULL);""")
    db.commit()
    db.close()
    st = SQLiteStorage(path)
    assert [(t["id"], t["role"]) for t in st.list_tokens("t1")] == [("tok_old", "admin")]
    assert st.find_token(b"\x00") == ("tok_old", "t1", b"\x00", "admin")
    st.add_token("tok_new", "t1", b"\x01", None, 2, "viewer")
    assert st.find_token(b"\x01") == ("tok_new", "t1", b"\x01", "viewer")
    st.close()


def test_cli_issues_a_token_with_a_role_and_lists_it(tmp_path, capsys):
    db = str(tmp_path / "j.db")
    assert cli_main(["tenant", "create", "acme", "--db", db]) in (0, None)
    assert cli_main(["tenant", "token", "acme", "--db", db, "--role", "factory", "--label", "line 3"]) in (0, None)
    out = capsys.readouterr()
    assert "role=factory" in out.err
    assert cli_main(["tenant", "tokens", "acme", "--db", db]) in (0, None)
    lines = capsys.readouterr().out.splitlines()
    # same second: the order between the two is the random id's
    assert sorted((ln.split()[2], ln.split("label=")[1]) for ln in lines) == [("role=admin", "initial"),
                                                                             ("role=factory", "line 3")]
