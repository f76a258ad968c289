"""The http-basic and broker-auth lockout (docs/protocol.md section 3.4, docs/mqtt.md): per device and
source host with the device's failure budget for hosts it was not accepted from. Real HTTP: each source
host is a real loopback address (127.0.x.y; Linux routes all of 127/8 to lo), the clock injected;
what was evaluated is read from the audit trail: refusals before the credential verified are summarised
(docs/api.md "Audit trail"), result `refused` for a failed guess and `locked_out` for one not checked."""

import base64

import aiohttp
import pytest

from verifier.mqtt import core as ma
from verifier.appkeys import CORE, STORAGE

PATH = "/v1/auth/device/basic"


def header(user, secret):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


async def basic(client, dev, host, right=True):
    """GET the http-basic endpoint from `host`; the HTTP status."""
    secret = ma.basic_secret(dev.master) if right else "00" * 32
    conn = aiohttp.TCPConnector(local_addr=(host, 0))
    async with aiohttp.ClientSession(connector=conn) as s:
        async with s.get(client.make_url(PATH), headers=header(dev.hex, secret)) as r:
            return r.status


def tally(app, tenant, dev, action="http.basic"):
    """{what: count} over the device's audit rows of `action` and its open summaries: a summary counts
    its refusals under its result (refused / locked_out), a row counts once under its reason (an accepted one under ok)."""
    rows = [(e["kind"], e["result"], e["reason"]) for e in app[STORAGE].list_audit(tenant.id, dev.hex)
            if e["action"] == action]
    rows += [(r[2], r[8], r[9]) for r in app[CORE].summary.drain() if r[3] == dev.hex and r[5] == action]
    out = {}
    for kind, result, reason in rows:
        key, n = (result, int(reason.split()[0])) if kind == "summary" else ("ok" if result == "ok" else reason, 1)
        out[key] = out.get(key, 0) + n
    return out


async def test_http_basic_fifth_failure_evaluated_then_locked_out_until_lockout_s(client, app, acme, clock):
    dev = acme.device(clock)
    out = [await basic(client, dev, "127.0.0.2", right=False) for _ in range(5)]
    out.append(await basic(client, dev, "127.0.0.2"))
    clock.advance(299)
    out.append(await basic(client, dev, "127.0.0.2"))
    clock.advance(1)                                          # lockout_s = 300 after the 5th failure
    out.append(await basic(client, dev, "127.0.0.2"))
    assert out == [401, 401, 401, 401, 401, 401, 401, 200]
    assert tally(app, acme, dev) == {"refused": 5, "locked_out": 2, "ok": 1}


async def test_http_basic_wrong_secrets_from_other_hosts_cannot_lock_out_device(client, app, acme, clock):
    """Before the fix, 5 failures from anywhere locked the device out everywhere for 300 s."""
    dev = acme.device(clock)
    assert await basic(client, dev, "127.0.0.2") == 200
    for h in range(10):
        for _ in range(5):
            assert await basic(client, dev, f"127.0.1.{h}", right=False) == 401
    assert await basic(client, dev, "127.0.0.2") == 200
    assert tally(app, acme, dev) == {"ok": 2, "refused": 5, "locked_out": 45}   # the budget: 45 not evaluated


async def test_http_basic_total_failures_bounded_across_hosts(client, app, acme, clock):
    """40 hosts, one wrong secret each, one every 10 s: 5 + one per 60 s evaluated (5 per 300 s)."""
    dev = acme.device(clock)
    for h in range(40):
        await basic(client, dev, f"127.0.2.{h}", right=False)
        clock.advance(10)
    assert tally(app, acme, dev) == {"refused": 11, "locked_out": 29}


async def test_http_basic_refusal_of_suspended_device_does_not_count_as_failure(client, app, acme, clock):
    """The right secret of a suspended device is refused (401) but is no guess: 8 of them lock nothing out."""
    dev = acme.device(clock)
    app[STORAGE].update_device(acme.id, bytes.fromhex(dev.hex), {"status": "suspended"})
    out = [await basic(client, dev, "127.0.0.3") for _ in range(8)]
    app[STORAGE].update_device(acme.id, bytes.fromhex(dev.hex), {"status": "active"})
    out.append(await basic(client, dev, "127.0.0.3"))
    assert out == [401] * 8 + [200]


async def emqx(client, dev, password, peerhost):
    r = await client.post("/v1/mqtt/auth", json={"clientid": dev.hex, "username": dev.hex, "password": password,
                                                 "peerhost": peerhost})
    return (await r.json())["result"]


async def test_mqtt_auth_wrong_passwords_from_other_peers_cannot_lock_out_device(client, app, acme, clock):
    dev = acme.device(clock)
    r = await client.post(f"/v1/devices/{dev.hex}/mqtt-password", headers=acme.headers)
    password = (await r.json())["password"]
    out = [await emqx(client, dev, password, "192.0.2.10")]
    for h in range(10):
        for _ in range(5):
            await emqx(client, dev, "wrong", f"10.0.0.{h}")
    out.append(await emqx(client, dev, password, "192.0.2.10"))
    out.append(await emqx(client, dev, password, "198.51.100.1"))     # a new peer while the budget is spent
    assert out == ["allow", "allow", "deny"]
    assert tally(app, acme, dev, "mqtt.connect") == {"ok": 2, "refused": 5, "locked_out": 46}


@pytest.mark.parametrize("proven", ["clientid_mismatch", "device_suspended"])
async def test_mqtt_auth_refusal_after_proof_does_not_reset_failures(client, app, acme, clock, proven):
    dev = acme.device(clock)
    r = await client.post(f"/v1/devices/{dev.hex}/mqtt-password", headers=acme.headers)
    password = (await r.json())["password"]
    peer = "192.0.2.10"
    out = [await emqx(client, dev, password, peer)]
    out += [await emqx(client, dev, "wrong", peer) for _ in range(4)]
    if proven == "device_suspended":
        app[STORAGE].update_device(acme.id, dev.id, {"status": "suspended"})
        out.append(await emqx(client, dev, password, peer))
        app[STORAGE].update_device(acme.id, dev.id, {"status": "active"})
    else:
        r = await client.post("/v1/mqtt/auth", json={"clientid": "x", "username": dev.hex, "password": password,
                                                     "peerhost": peer})
        out.append((await r.json())["result"])
    out.append(await emqx(client, dev, "wrong", peer))
    out.append(await emqx(client, dev, password, peer))
    assert out == ["allow", "deny", "deny", "deny", "deny", "deny", "deny", "deny"]
    # the proven refusal kept its row and reset nothing: the 5th wrong password started the lockout
    assert tally(app, acme, dev, "mqtt.connect") == {"ok": 1, "refused": 5, proven: 1, "locked_out": 1}
