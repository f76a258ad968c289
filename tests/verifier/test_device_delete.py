"""DELETE /v1/devices/{id}: the way back from a mistaken provisioning (a typo in --port, a failed board write).
Only a device that never authenticated goes, its certificates revoked and its MQTT password removed with it; its
serial is then free; every attempt is audited."""

import pytest

from verifier.appkeys import STORAGE
from verifier.binauth.core import OK


async def _provision(client, tenant, serial):
    r = await client.post("/v1/devices", json={"serial_number": serial}, headers=tenant.headers)
    assert r.status == 201, await r.text()
    return (await r.json())["device_id"]


async def _audit(client, tenant, device_id):
    r = await client.get(f"/v1/audit?device_id={device_id}", headers=tenant.headers)
    return [(e["action"], e["result"], e["reason"]) for e in (await r.json())["entries"]]


async def test_deleting_a_never_authenticated_device_frees_its_serial(client, tenant_a):
    dev = await _provision(client, tenant_a, "TYPO-1")
    r = await client.delete(f"/v1/devices/{dev}", headers=tenant_a.headers)
    assert r.status == 204 and await r.read() == b""
    assert (await client.get(f"/v1/devices/{dev}", headers=tenant_a.headers)).status == 404
    again = await _provision(client, tenant_a, "TYPO-1")          # the serial is usable again
    assert again != dev
    assert ("device.delete", "ok", "serial TYPO-1, provisioning, never authenticated") in await _audit(
        client, tenant_a, dev)


async def test_decommissioned_device_that_never_authenticated_can_be_deleted(client, tenant_a):
    dev = await _provision(client, tenant_a, "TYPO-2")
    r = await client.post(f"/v1/devices/{dev}/lifecycle", json={"action": "decommission"}, headers=tenant_a.headers)
    assert r.status == 200
    r = await client.delete(f"/v1/devices/{dev}", headers=tenant_a.headers)
    assert r.status == 204
    assert await _provision(client, tenant_a, "TYPO-2")


async def test_device_that_authenticated_is_never_deleted(client, tenant_a):
    d = tenant_a.device(serial_number="FIELD-1")
    req = d.request()
    r = await client.post("/v1/binauth", data=req, headers={"Content-Type": "application/octet-stream"})
    reply = d.reply(req, await r.read())
    assert r.status == 200 and reply["status"] == OK and reply["authenticated"]
    r = await client.delete(f"/v1/devices/{d.hex}", headers=tenant_a.headers)
    assert r.status == 409
    body = await r.json()
    assert body["error"] == "conflict" and "has authenticated" in body["message"]
    assert (await client.get(f"/v1/devices/{d.hex}", headers=tenant_a.headers)).status == 200
    assert ("device.delete", "error", "it has authenticated: decommission it instead") in await _audit(
        client, tenant_a, d.hex)


async def test_factory_token_deletes_a_device_with_a_certificate_and_password_revoking_them(client, tenant_a, clock):
    """The clean-up of a failed board write (tools/provision.py): a factory token cannot decommission, so the
    delete itself revokes the certificate (it stays on the CRL) and removes the MQTT password."""
    from cryptography import x509
    from verifier.registry import core as registry
    st = client.app[STORAGE]
    _, tok = registry.issue_token(st, tenant_a.id, clock(), label="line-1", role="factory")
    factory = {"Authorization": f"Bearer {tok}"}
    dev = await _provision(client, tenant_a, "PW-1")
    r = await client.post(f"/v1/devices/{dev}/certificate", json={"days": 30}, headers=factory)
    assert r.status == 201, await r.text()
    serial = (await r.json())["serial"]
    r = await client.post(f"/v1/devices/{dev}/mqtt-password", json={}, headers=factory)
    assert r.status == 201, await r.text()
    r = await client.delete(f"/v1/devices/{dev}", headers=factory)
    assert r.status == 204, await r.text()
    assert (await client.get(f"/v1/devices/{dev}", headers=tenant_a.headers)).status == 404
    assert st.get_mqtt_password(bytes.fromhex(dev)) is None
    r = await client.get("/v1/ca/crl", headers=tenant_a.headers)
    crl = x509.load_pem_x509_crl(await r.read())
    assert [format(c.serial_number, "x") for c in crl] == [serial.lower().lstrip("0")]
    assert ("device.delete", "ok", "serial PW-1, provisioning, never authenticated; 1 certificate(s) revoked; "
            "MQTT password removed") in await _audit(client, tenant_a, dev)
    assert await _provision(client, tenant_a, "PW-1")            # the serial is free again


async def test_another_tenants_device_is_never_deleted(client, tenant_a, tenant_b):
    dev = await _provision(client, tenant_a, "MINE-1")
    r = await client.delete(f"/v1/devices/{dev}", headers=tenant_b.headers)
    assert r.status == 404 and (await r.json())["error"] == "not_found"
    assert (await client.get(f"/v1/devices/{dev}", headers=tenant_a.headers)).status == 200
    assert (await client.delete(f"/v1/devices/{dev}", headers={})).status == 401


async def test_storage_delete_is_scoped_to_the_tenant(client, tenant_a, tenant_b, clock):
    """At the storage interface itself, not only behind the HTTP layer's check."""
    st = client.app[STORAGE]
    (hex_id, _), = tenant_a.provision([{"serial_number": "SCOPE-1"}], "provisioning")
    did = bytes.fromhex(hex_id)
    row = (int(clock()), tenant_b.id, "admin", hex_id, "t", "device.delete", None, None, "ok", "x")
    assert st.delete_unused_device(tenant_b.id, did, row) == "absent"
    assert st.get_device(did, tenant_a.id) is not None
    assert st.delete_unused_device(tenant_a.id, did, row[:1] + (tenant_a.id,) + row[2:]) == "deleted"
    assert st.get_device(did) is None


@pytest.mark.parametrize("use, outcome", [
    (lambda st, did, now: st.touch_last_seen(did, now), "authenticated"),                 # MQTT / HTTP auth
    (lambda st, did, now: st.use_chain_token(did, 0, now, "edge", now + 600), "authenticated"),   # offline token
    (lambda st, did, now: st.use_chain_token(did, 0, now, "device", now + 600), "authenticated"),
    (lambda st, did, now: st.use_chain_token(did, 0, now, "abandoned", now + 600), "deleted"),  # never reached it
    # a DTLS handshake: only the audit row it writes (verifier/dtls/auth.py) shows it
    (lambda st, did, now: st.add_audit([(now, st.get_device(did)["tenant_id"], "auth", did.hex(), None, "dtls", "dtls",
                                         "127.0.0.1:5000", "OK", None)]), "authenticated"),
    (lambda st, did, now: st.add_audit([(now, st.get_device(did)["tenant_id"], "auth", did.hex(), None, "dtls", "dtls",
                                         "127.0.0.1:5000", "SIGNATURE", "bad finished")]), "deleted"),
    (lambda st, did, now: None, "deleted"),
])
async def test_any_authentication_keeps_a_device_from_deletion(client, tenant_a, clock, use, outcome):
    st = client.app[STORAGE]
    (hex_id, _), = tenant_a.provision([{"serial_number": "USED-1"}], "active")
    did, now = bytes.fromhex(hex_id), int(clock())
    use(st, did, now)
    row = (now, tenant_a.id, "admin", hex_id, "t", "device.delete", None, None, "ok", "x")
    assert st.delete_unused_device(tenant_a.id, did, row) == outcome
    assert (st.get_device(did) is None) == (outcome == "deleted")


async def test_delete_deletes_the_broker_client_and_writes_the_new_crl(client, tenant_a, monkeypatch):
    """With a managed broker: the delete's MQTT hook deletes the device's dynamic-security client and writes the
    tenant's fresh CRL to the broker, as a decommission does."""
    from verifier.mqtt import routes as mqtt_routes

    class FakeBroker:
        host, tenant_ports = "127.0.0.1", {}

        def __init__(self):
            self.calls = []

        def password_port(self, tenant_id):
            return None

        def set_device_password(self, tenant_id, device_hex, password):
            self.calls.append(("set_device_password", device_hex))

        def write_crl(self, tenant_id, pem):
            self.calls.append(("write_crl", tenant_id))

        def delete_device(self, device_hex):
            self.calls.append(("delete_device", device_hex))

    broker = FakeBroker()
    monkeypatch.setattr(mqtt_routes, "_broker", lambda app: broker)
    dev = await _provision(client, tenant_a, "BROKER-1")
    assert (await client.post(f"/v1/devices/{dev}/certificate", json={}, headers=tenant_a.headers)).status == 201
    assert (await client.post(f"/v1/devices/{dev}/mqtt-password", json={}, headers=tenant_a.headers)).status == 201
    broker.calls.clear()
    assert (await client.delete(f"/v1/devices/{dev}", headers=tenant_a.headers)).status == 204
    assert broker.calls == [("write_crl", tenant_a.id), ("delete_device", dev)]
