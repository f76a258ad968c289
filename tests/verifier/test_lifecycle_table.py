"""The device lifecycle through the HTTP API, against the table written out here (docs/api.md): every
(status, action) pair, allowed with the status it leads to, or refused with 409 invalid_transition and
the device left as it was. Nothing is taken from verifier.model, so a transition added to or removed
from the code's table fails here."""

import pytest

# (status, action) -> the status after it, or 409 (refused). All 16 pairs.
EXPECTED = {
    ("provisioning", "activate"): "active",
    ("provisioning", "suspend"): 409,
    ("provisioning", "resume"): 409,
    ("provisioning", "decommission"): "decommissioned",
    ("active", "activate"): 409,
    ("active", "suspend"): "suspended",
    ("active", "resume"): 409,
    ("active", "decommission"): "decommissioned",
    ("suspended", "activate"): 409,
    ("suspended", "suspend"): 409,
    ("suspended", "resume"): "active",
    ("suspended", "decommission"): "decommissioned",
    ("decommissioned", "activate"): 409,
    ("decommissioned", "suspend"): 409,
    ("decommissioned", "resume"): 409,
    ("decommissioned", "decommission"): 409,
}

# how a new device (provisioning) is brought to each status over the API: [(action, status after)]
PATH_TO = {
    "provisioning": [],
    "active": [("activate", "active")],
    "suspended": [("activate", "active"), ("suspend", "suspended")],
    "decommissioned": [("decommission", "decommissioned")],
}


async def status_of(client, tenant, did):
    r = await client.get(f"/v1/devices/{did}", headers=tenant.headers)
    assert r.status == 200
    return (await r.json())["status"]


@pytest.mark.parametrize("start, action", sorted(EXPECTED), ids=[f"{s}-{a}" for s, a in sorted(EXPECTED)])
async def test_lifecycle_follows_the_documented_table(client, tenant_a, start, action):
    r = await client.post("/v1/devices", json={"serial_number": "SN-LC"}, headers=tenant_a.headers)
    assert r.status == 201
    did = (await r.json())["device_id"]
    url = f"/v1/devices/{did}/lifecycle"
    for step, after in PATH_TO[start]:
        r = await client.post(url, json={"action": step}, headers=tenant_a.headers)
        assert r.status == 200 and (await r.json())["status"] == after
    assert await status_of(client, tenant_a, did) == start

    r = await client.post(url, json={"action": action, "reason": "table"}, headers=tenant_a.headers)
    body = await r.json()
    expected = EXPECTED[(start, action)]
    if expected == 409:
        assert r.status == 409 and body["error"] == "invalid_transition" and start in body["message"], body
        assert await status_of(client, tenant_a, did) == start
    else:
        assert r.status == 200 and body["status"] == expected, body
        assert await status_of(client, tenant_a, did) == expected


def test_the_table_above_covers_every_status_and_action():
    statuses = ("provisioning", "active", "suspended", "decommissioned")
    actions = ("activate", "suspend", "resume", "decommission")
    assert set(EXPECTED) == {(s, a) for s in statuses for a in actions}
