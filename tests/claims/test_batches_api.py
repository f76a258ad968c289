"""The claim batches' admin API (docs/api.md "Claims"): create (the secret once), list, show, the claims list,
roles (admin for create, revoke and reset; viewer for reads), and the checks of a new batch with their literal
statuses."""

import pytest

from tests.support import T0
from verifier.appkeys import STORAGE
from verifier.registry import core as registry


async def test_create_shows_the_secret_once_and_the_views_never(claims):
    batch, secret = await claims.batch(serials=["A-1", "A-2"], max_count=2)
    assert len(secret) == 32 and len(batch["batch_id"]) == 16 and "hook_secret" not in batch
    assert (batch["not_before"], batch["not_after"], batch["status"], batch["serials"]) == (
        T0, T0 + 365 * 86400, "active", ["A-1", "A-2"])
    _, one = await claims.get(f"/v1/claim-batches/{batch['batch_id']}")
    _, listed = await claims.get("/v1/claim-batches")
    assert "batch_secret" not in one and [b["batch_id"] for b in listed["batches"]] == [batch["batch_id"]]
    assert secret.hex() not in str(one) + str(listed)
    # sealed at rest: the row does not hold the secret
    row = claims.client.app[STORAGE].get_claim_batch(bytes.fromhex(batch["batch_id"]))
    assert secret not in bytes(row["sealed_secret"])


async def test_another_tenants_batch_is_404(claims, client, clock):
    batch, _ = await claims.batch()
    other = registry.create_tenant(client.app[STORAGE], "other", clock())
    _, token = registry.issue_token(client.app[STORAGE], other["id"], clock())
    for path in (f"/v1/claim-batches/{batch['batch_id']}", f"/v1/claim-batches/{batch['batch_id']}/claims"):
        r = await client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert r.status == 404


@pytest.mark.parametrize("role, method, path, expected", [
    ("viewer", "POST", "/v1/claim-batches", 403),
    ("operator", "POST", "/v1/claim-batches", 403),
    ("factory", "POST", "/v1/claim-batches", 403),
    ("viewer", "GET", "/v1/claim-batches", 200),
    ("viewer", "GET", "/v1/claim-batches/{id}", 200),
    ("viewer", "GET", "/v1/claim-batches/{id}/claims", 200),
    ("viewer", "POST", "/v1/claim-batches/{id}/revoke", 403),
    ("operator", "POST", "/v1/claim-batches/{id}/claims/SN-1/reset", 403),
])
async def test_roles(claims, client, clock, tenant, role, method, path, expected):
    batch, _ = await claims.batch()
    _, token = registry.issue_token(client.app[STORAGE], tenant.id, clock(), role=role)
    r = await client.request(method, path.replace("{id}", batch["batch_id"]),
                             json={"name": "x", "max_count": 1, "serial_pattern": "*"},
                             headers={"Authorization": f"Bearer {token}"})
    assert r.status == expected


async def test_no_token_is_401(client):
    assert (await client.get("/v1/claim-batches")).status == 401


@pytest.mark.parametrize("doc, status", [
    ({"name": "x", "max_count": 1}, 400),                                             # neither serials nor pattern
    ({"name": "x", "max_count": 1, "serials": ["A"], "serial_pattern": "*"}, 400),     # both
    ({"name": "x", "max_count": 1, "serials": []}, 400),
    ({"name": "x", "max_count": 1, "serials": ["A", "A"]}, 400),
    ({"name": "x", "max_count": 1, "serials": ["A B"]}, 400),
    ({"name": "x", "max_count": 1, "serials": ["x" * 65]}, 400),
    ({"name": "x", "max_count": 1, "serial_pattern": "A *"}, 400),
    ({"name": "x", "max_count": 0, "serial_pattern": "*"}, 400),
    ({"name": "x", "serial_pattern": "*"}, 400),                                      # max_count required
    ({"name": "", "max_count": 1, "serial_pattern": "*"}, 400),
    ({"name": "x", "max_count": 1, "serial_pattern": "*", "extra": 1}, 400),
    ({"name": "x", "max_count": 1, "serial_pattern": "*", "device": {"transport": "tcp"}}, 400),
    ({"name": "x", "max_count": 1, "serial_pattern": "*", "device": {"region": "EU"}}, 400),
    ({"name": "x", "max_count": 1, "serial_pattern": "*", "device": {"colour": "red"}}, 400),
    ({"name": "x", "max_count": 1, "serial_pattern": "*", "device": {"board": {"k": 'a"b'}}}, 400),
    ({"name": "x", "max_count": 1, "serial_pattern": "*", "device": {"board": {f"k{i}": i for i in range(9)}}}, 400),
    ({"name": "x", "max_count": 1, "serial_pattern": "*", "device": {"policy": []}}, 400),
    ({"name": "x", "max_count": 1, "serial_pattern": "*", "hook": {"url": "ftp://h/x"}}, 400),
    ({"name": "x", "max_count": 1, "serial_pattern": "*", "hook": {"url": "http://u:p@h/x"}}, 400),
    ({"name": "x", "max_count": 1, "serial_pattern": "*", "not_before": T0 + 10, "not_after": T0 + 10}, 409),
    ({"name": "x", "max_count": 1.0, "serial_pattern": "*", "device": {"board": {"n": 2.0}}}, 201),
])
async def test_new_batch_checks(client, tenant, doc, status):
    r = await client.post("/v1/claim-batches", json=doc, headers=tenant.headers)
    assert r.status == status, await r.text()


async def test_claims_list_pages_in_serial_order(claims):
    batch, secret = await claims.batch(serial_pattern="P-*")
    for s in ("P-3", "P-1", "P-2"):
        assert (await claims.claim(claims.board(batch, secret, s)))[0] == 200
    _, page = await claims.get(f"/v1/claim-batches/{batch['batch_id']}/claims?limit=2")
    assert [c["serial"] for c in page["claims"]] == ["P-1", "P-2"] and page["next_cursor"] == "P-2"
    _, page = await claims.get(f"/v1/claim-batches/{batch['batch_id']}/claims?limit=2&cursor=P-2")
    assert [c["serial"] for c in page["claims"]] == ["P-3"] and page["next_cursor"] is None


async def test_a_serial_the_tenant_already_has_is_409_already_claimed(claims, tenant):
    tenant.provision([{"serial_number": "SN-OLD"}])
    batch, secret = await claims.batch()
    status, body, _ = await claims.claim(claims.board(batch, secret, "SN-OLD"))
    assert (status, body["error"]) == (409, "already_claimed")
    assert (await claims.get(f"/v1/claim-batches/{batch['batch_id']}"))[1]["claimed_count"] == 0


async def test_reset_of_a_serial_with_a_slash(claims):
    batch, secret = await claims.batch(serial_pattern="*")
    assert (await claims.claim(claims.board(batch, secret, "a/b")))[0] == 200
    r = await claims.client.post(f"/v1/claim-batches/{batch['batch_id']}/claims/a%2Fb/reset",
                                 headers=claims.tenant.headers)
    assert r.status == 200 and (await r.json())["serial"] == "a/b"
