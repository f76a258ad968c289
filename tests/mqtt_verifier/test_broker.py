"""Against a real mosquitto running the config the verifier generates: mutual TLS with device certificates,
per-device topic ACLs, revocation through the CRL, expiry, other tenants' CAs, client ids (refused by the
janua_clientid plugin, overridden without it), passwords in the dynamic-security plugin following the device
lifecycle, and a verifier restart."""

import time

import pytest

from tests.mqtt_verifier.conftest import Client, write_identity
from verifier.app import create_app


async def issue(client, tenant, dev, **body):
    r = await client.post(f"/v1/devices/{dev.hex}/certificate", json=body, headers=tenant.headers)
    assert r.status == 201, await r.text()
    return await r.json()


async def lifecycle(client, tenant, dev, action):
    r = await client.post(f"/v1/devices/{dev.hex}/lifecycle", json={"action": action}, headers=tenant.headers)
    assert r.status == 200, await r.text()


def tls_client(broker, tenant, dev, files, client_id=None, port_tenant=None):
    return Client(client_id or dev.hex, broker.tls_port(port_tenant or tenant), ca=broker.ca_file(port_tenant or tenant),
                  cert=files[0], key=files[1])


async def test_device_certificate_publishes_to_its_own_topic(client, acme, broker, clock, tmp_path):
    dev = acme.device(clock)
    files = write_identity(tmp_path / "a", await issue(client, acme, dev))
    c = tls_client(broker, acme, dev, files)
    assert c.connect() == "ok", broker.mq.log[-2000:]
    assert c.subscribe(dev.prefix + "/cmd/#") == [1]
    c.publish(dev.prefix + "/cmd/x", b"hello")
    assert c.receive() == (dev.prefix + "/cmd/x", b"hello")
    c.close()


@pytest.mark.parametrize("key_type", ["rsa2048"])
async def test_rsa_device_certificate_connects(client, acme, broker, clock, tmp_path, key_type):
    dev = acme.device(clock)
    files = write_identity(tmp_path / "a", await issue(client, acme, dev, key_type=key_type))
    c = tls_client(broker, acme, dev, files)
    assert c.connect() == "ok"
    c.close()


async def test_acl_prevents_publishing_and_subscribing_to_another_devices_topics(client, acme, broker, clock,
                                                                                   tmp_path):
    a, b = acme.device(clock), acme.device(clock)
    ca = tls_client(broker, acme, a, write_identity(tmp_path / "a", await issue(client, acme, a)))
    cb = tls_client(broker, acme, b, write_identity(tmp_path / "b", await issue(client, acme, b)))
    assert ca.connect() == "ok" and cb.connect() == "ok"
    assert cb.subscribe(b.prefix + "/#") == [1]
    assert ca.subscribe(a.prefix + "/#") == [1]
    # mosquitto's acl_file grants every SUBSCRIBE and checks read access at delivery: a's subscriptions to
    # b's subtree, the tenant's tree or everything bring it nothing of b's
    for topic in (b.prefix + "/#", f"janua/{b.prefix.split('/')[1]}/#", "#", "janua/+/+/x"):
        ca.subscribe(topic)
    ca.publish(b.prefix + "/cmd", b"forged")           # silently dropped by the broker (MQTT 3.1.1)
    cb.publish(b.prefix + "/own", b"b")                 # acknowledged (QoS 1) once routed
    assert cb.receive() == (b.prefix + "/own", b"b")    # b saw nothing before its own message
    ca.publish(a.prefix + "/marker", b"after")          # queued to a after anything of b's would have been
    assert ca.receive() == (a.prefix + "/marker", b"after")
    ca.close(), cb.close()


async def test_revoked_certificate_is_refused_after_crl_rewrite(client, acme, broker, clock, tmp_path):
    dev = acme.device(clock)
    files = write_identity(tmp_path / "a", await issue(client, acme, dev))
    c = tls_client(broker, acme, dev, files)
    assert c.connect() == "ok"
    c.close()
    before = broker.reloads()
    r = await client.post(f"/v1/devices/{dev.hex}/certificate/revoke", json={"reason": "key_compromise"},
                          headers=acme.headers)
    assert r.status == 200 and (await r.json())["revoked"] == 1
    broker.wait_reload(before)
    assert tls_client(broker, acme, dev, files).connect().startswith("refused")
    # a new certificate for the same device works again
    files2 = write_identity(tmp_path / "a2", await issue(client, acme, dev))
    c2 = tls_client(broker, acme, dev, files2)
    assert c2.connect() == "ok"
    c2.close()


async def test_expired_certificate_is_refused(client, acme, broker, clock, tmp_path):
    dev = acme.device(clock)
    real = clock.now
    clock.now = real - 400 * 86400                      # the verifier's clock, injected: issue in the past
    issued = await issue(client, acme, dev, days=365)
    clock.now = real
    assert issued["not_after"] < real
    assert tls_client(broker, acme, dev, write_identity(tmp_path / "a", issued)).connect().startswith("refused")
    c = tls_client(broker, acme, dev, write_identity(tmp_path / "b", await issue(client, acme, dev)))
    assert c.connect() == "ok"                           # control: a current certificate of the same device
    c.close()


async def test_certificate_of_another_tenants_ca_is_refused(client, acme, other, broker, clock, tmp_path):
    dev = other.device(clock)
    files = write_identity(tmp_path / "o", await issue(client, other, dev))
    assert tls_client(broker, other, dev, files).connect() == "ok"     # on its own tenant's listener
    # on acme's listener (trusting acme's CA for the server, presenting other's certificate)
    assert tls_client(broker, other, dev, files, port_tenant=acme).connect().startswith("refused")


@pytest.mark.parametrize("claimed", ["another_devices_id", "unregistered_id", "id_with_suffix",
                                     "username_of_another_device"])
async def test_clientid_other_than_certificate_cn_is_refused(client, acme, broker, clock, tmp_path, claimed):
    """The janua_clientid plugin on the certificate listener: a device presenting its own certificate but
    claiming another client id (or another device's user name) gets CONNACK "not authorized"; the device whose
    id it claimed stays connected (no session takeover) and hears nothing of it."""
    assert broker.conf["clientid_plugin"] is not None
    a, b = acme.device(clock), acme.device(clock)
    cb = tls_client(broker, acme, b, write_identity(tmp_path / "b", await issue(client, acme, b)))
    assert cb.connect() == "ok"
    assert cb.subscribe(b.prefix + "/#") == [1]
    files = write_identity(tmp_path / "a", await issue(client, acme, a))
    client_id, username = {"another_devices_id": (b.hex, None), "unregistered_id": ("0" * 16, None),
                           "id_with_suffix": (a.hex + "x", None),
                           "username_of_another_device": (a.hex, b.hex)}[claimed]
    ca = Client(client_id, broker.tls_port(acme), ca=broker.ca_file(acme), cert=files[0], key=files[1],
                username=username)
    assert ca.connect() == "refused: Not authorized", broker.mq.log[-2000:]
    ca.close()
    assert "janua_clientid: refused" in broker.mq.log
    cb.publish(b.prefix + "/still", b"here")
    assert cb.receive() == (b.prefix + "/still", b"here")
    assert not cb.disconnected.is_set()
    cb.close()


async def test_clientid_equal_to_certificate_cn_connects_with_the_cn_as_user_name(client, acme, broker, clock,
                                                                                  tmp_path):
    """The positive side of the plugin: client id = CN connects, with or without a user name equal to the CN,
    and the ACL (%u = the CN the plugin set as user name) gives it its own topics."""
    dev = acme.device(clock)
    files = write_identity(tmp_path / "a", await issue(client, acme, dev))
    for username in (None, dev.hex):
        c = Client(dev.hex, broker.tls_port(acme), ca=broker.ca_file(acme), cert=files[0], key=files[1],
                   username=username)
        assert c.connect() == "ok", broker.mq.log[-2000:]
        assert c.subscribe(dev.prefix + "/#") == [1]
        c.publish(dev.prefix + "/u", repr(username).encode())
        assert c.receive() == (dev.prefix + "/u", repr(username).encode())
        c.close()


async def test_without_the_plugin_a_mismatched_clientid_is_overridden_not_taking_over(client, acme, override_broker,
                                                                                     clock, tmp_path):
    """The fallback (no janua_clientid plugin): mosquitto cannot refuse a CONNECT whose client id differs from the
    certificate CN; the generated listener replaces the client id with the CN (use_username_as_clientid), so a
    device cannot take over another's session nor act under its id: the victim stays connected and the attacker
    still reaches only its topics."""
    broker = override_broker
    assert broker.conf["clientid_plugin"] is None
    assert "use_username_as_clientid true" in (broker.dir / "mosquitto.conf").read_text()
    a, b = acme.device(clock), acme.device(clock)
    cb = tls_client(broker, acme, b, write_identity(tmp_path / "b", await issue(client, acme, b)))
    assert cb.connect() == "ok"
    assert cb.subscribe(b.prefix + "/#") == [1]
    ca = tls_client(broker, acme, a, write_identity(tmp_path / "a", await issue(client, acme, a)), client_id=b.hex)
    assert ca.connect() == "ok"
    assert f"as {a.hex} " in broker.mq.log                  # the broker knows it by its certificate's CN
    ca.subscribe(b.prefix + "/#")
    cb.publish(b.prefix + "/still", b"here")
    assert cb.receive() == (b.prefix + "/still", b"here")
    assert not cb.disconnected.is_set()
    ca.subscribe(a.prefix + "/#")
    ca.publish(a.prefix + "/marker", b"m")
    assert ca.receive() == (a.prefix + "/marker", b"m")   # nothing of b's reached a first
    ca.close(), cb.close()


async def test_suspension_holds_certificate_and_resume_releases_it(client, acme, broker, clock, tmp_path):
    dev = acme.device(clock)
    files = write_identity(tmp_path / "a", await issue(client, acme, dev))
    before = broker.reloads()
    await lifecycle(client, acme, dev, "suspend")
    broker.wait_reload(before)
    assert tls_client(broker, acme, dev, files).connect().startswith("refused")
    before = broker.reloads()
    await lifecycle(client, acme, dev, "resume")
    broker.wait_reload(before)
    c = tls_client(broker, acme, dev, files)
    assert c.connect() == "ok"
    c.close()


async def test_quarantine_holds_certificate_and_password_until_release(client, acme, broker, clock, tmp_path):
    """Issue #12: a quarantined device may reach only OTA and attestation. The broker's certificate and
    password listeners never ask the verifier, so the quarantine must reach them: hold and disable."""
    dev = acme.device(clock)
    files = write_identity(tmp_path / "a", await issue(client, acme, dev))
    c, pw = await password_client(client, acme, dev, broker)
    assert c.connect() == "ok"
    before = broker.reloads()
    await lifecycle(client, acme, dev, "quarantine")
    broker.wait_reload(before)
    assert c.disconnected.wait(5)                        # dynsec disableClient kicks the live connection
    c.close()
    assert tls_client(broker, acme, dev, files).connect().startswith("refused")
    c2, _ = await password_client(client, acme, dev, broker, password=pw)
    assert c2.connect().startswith("refused")
    before = broker.reloads()
    await lifecycle(client, acme, dev, "release")
    broker.wait_reload(before)
    c3 = tls_client(broker, acme, dev, files)
    assert c3.connect() == "ok"
    c3.close()
    c4, _ = await password_client(client, acme, dev, broker, password=pw)
    assert c4.connect() == "ok"
    c4.close()


async def password_client(client, acme, dev, broker, client_id=None, password=None):
    if password is None:
        r = await client.post(f"/v1/devices/{dev.hex}/mqtt-password", headers=acme.headers)
        assert r.status == 201, await r.text()
        doc = await r.json()
        assert doc["username"] == dev.hex and doc["broker"]["port"] == broker.password_port
        password = doc["password"]
    # the password listener speaks TLS with the broker certificate of the password tenant (acme: first by name)
    return Client(client_id or dev.hex, broker.password_port, ca=broker.ca_file(acme), username=dev.hex,
                  password=password), password


async def test_password_device_reaches_only_its_topics(client, acme, broker, clock):
    a, b = acme.device(clock), acme.device(clock)
    c, _ = await password_client(client, acme, a, broker)
    assert c.connect() == "ok"
    assert c.subscribe(a.prefix + "/#") == [1]
    assert c.subscribe(b.prefix + "/#") == [0x80]
    c.publish(a.prefix + "/t", b"x")
    assert c.receive() == (a.prefix + "/t", b"x")
    c.close()


@pytest.mark.parametrize("what", ["wrong_password", "clientid_mismatch"])
async def test_password_path_refuses(client, acme, broker, clock, what):
    dev = acme.device(clock)
    _, pw = await password_client(client, acme, dev, broker)
    if what == "wrong_password":
        c, _ = await password_client(client, acme, dev, broker, password=pw[:-2] + "xx")
    else:
        c, _ = await password_client(client, acme, dev, broker, client_id="0" * 16, password=pw)
    assert c.connect().startswith("refused")


async def test_suspended_devices_password_stops_working(client, acme, broker, clock):
    dev = acme.device(clock)
    c, pw = await password_client(client, acme, dev, broker)
    assert c.connect() == "ok"
    await lifecycle(client, acme, dev, "suspend")
    assert c.disconnected.wait(5)                        # dynsec disableClient kicks the live connection
    c.close()
    c2, _ = await password_client(client, acme, dev, broker, password=pw)
    assert c2.connect().startswith("refused")
    await lifecycle(client, acme, dev, "resume")
    c3, _ = await password_client(client, acme, dev, broker, password=pw)
    assert c3.connect() == "ok"
    c3.close()
    await lifecycle(client, acme, dev, "decommission")
    c4, _ = await password_client(client, acme, dev, broker, password=pw)
    assert c4.connect().startswith("refused")


async def test_decommission_revokes_certificate_and_deletes_password(client, acme, broker, clock, tmp_path, app):
    dev = acme.device(clock)
    files = write_identity(tmp_path / "a", await issue(client, acme, dev))
    _, pw = await password_client(client, acme, dev, broker)
    before = broker.reloads()
    await lifecycle(client, acme, dev, "decommission")
    broker.wait_reload(before)
    assert tls_client(broker, acme, dev, files).connect().startswith("refused")
    c, _ = await password_client(client, acme, dev, broker, password=pw)
    assert c.connect().startswith("refused")
    r = await client.get(f"/v1/devices/{dev.hex}/certificate", headers=acme.headers)
    doc = await r.json()
    assert doc["current"] is None and doc["certificates"][0]["reason"] == "cessation_of_operation"


async def test_reconnect_and_revoke_after_verifier_restart(aiohttp_client, client, config, acme, broker, clock,
                                                           tmp_path):
    dev, dev2 = acme.device(clock), acme.device(clock)
    files = write_identity(tmp_path / "a", await issue(client, acme, dev))
    files2 = write_identity(tmp_path / "b", await issue(client, acme, dev2))
    await client.close()                                 # the verifier stops; the broker keeps running
    c = tls_client(broker, acme, dev, files)
    assert c.connect() == "ok"
    c.close()
    restarted = await aiohttp_client(create_app(config))  # same database and KEK
    c = tls_client(broker, acme, dev, files)
    assert c.connect() == "ok"                           # the CRL it rewrote at start is still valid
    c.close()
    before = broker.reloads()
    r = await restarted.post(f"/v1/devices/{dev2.hex}/certificate/revoke", headers=acme.headers)
    assert r.status == 200
    broker.wait_reload(before)
    # the reload's log line comes before mosquitto re-reads the CRL: on a loaded machine that can take
    # longer than wait_reload's grace, so the refusal is awaited (a CRL never applied still fails here)
    assert _eventually(lambda: tls_client(broker, acme, dev2, files2).connect(),
                       lambda got: got.startswith("refused")).startswith("refused")
    c = tls_client(broker, acme, dev, files)
    assert c.connect() == "ok"
    c.close()


def _eventually(attempt, done, timeout=5.0):
    """attempt() until done(result) or `timeout` seconds passed; the last result."""
    deadline = time.monotonic() + timeout
    got = attempt()
    while not done(got) and time.monotonic() < deadline:
        time.sleep(0.1)
        got = attempt()
    return got
