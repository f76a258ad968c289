"""Webhook delivery against a real aiohttp receiver on localhost: the signed request, retries with their
schedule, timeouts, redirects, subscriptions, deletion, and two delivery loops on one registry.
Time moves only when a test moves the fake clock; each pass is Deliverer.run_once(now)."""

import asyncio
import hashlib
import hmac
import json
import re

from tests.support import T0, AdminTenant
import pytest

from verifier.appkeys import NOTIFY, SEALER, STORAGE
from verifier.notify import core
from verifier.notify.delivery import Deliverer, is_public


def another_instance(config):
    """Another verifier instance's own connection to the same registry (the storage verifier.app opens for the
    config: the SQLite file, or under JANUA_TEST_BACKEND=postgresql that file's database)."""
    import verifier.app
    return verifier.app.open_storage(config.db_path)


async def add_hook(client, tenant, url, **fields):
    r = await client.post("/v1/webhooks", json={"url": url, **fields}, headers=tenant.headers)
    assert r.status == 201, await r.text()
    return await r.json()


async def deliveries(client, tenant, hook_id):
    r = await client.get(f"/v1/webhooks/{hook_id}/deliveries", headers=tenant.headers)
    assert r.status == 200
    return (await r.json())["deliveries"]


def emit(client, tenant, event="device.quarantined", data=None, now=T0):
    return core.emit(client.app[STORAGE], tenant.id, event, data or {"device_id": "3f9a0c1b7d2e4a65"}, now)


async def test_signed_request_verifies_with_the_secret_and_has_the_documented_headers(client, tenant, receiver,
                                                                                     deliverer, clock):
    hook = await add_hook(client, tenant, receiver.url + "/hook")
    clock.advance(5)
    eid = emit(client, tenant, data={"device_id": "3f9a0c1b7d2e4a65", "reason": "tag"}, now=T0 + 5)
    clock.advance(55)
    assert await deliverer.run_once(clock()) == 1
    (req,) = receiver.requests
    h = req["headers"]
    assert req["path"] == "/hook"
    assert h["Content-Type"] == "application/json"
    assert h["X-Janua-Event"] == "device.quarantined"
    assert re.fullmatch(r"dlv_[0-9a-f]{24}", h["X-Janua-Delivery"])
    m = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", h["X-Janua-Signature"])
    assert m and m.group(1) == str(T0 + 60)
    # the receiver's own check, written here (not core.verify_signature): HMAC over "<t>." || raw body,
    # keyed with the secret text as shown once
    mac = hmac.new(hook["secret"].encode(), f"{T0 + 60}.".encode() + req["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(mac, m.group(2))
    assert json.loads(req["body"]) == {"id": eid, "event": "device.quarantined", "tenant": tenant.id,
                                       "created": T0 + 5, "data": {"device_id": "3f9a0c1b7d2e4a65", "reason": "tag"}}
    (d,) = await deliveries(client, tenant, hook["id"])
    assert (d["id"], d["state"], d["attempts"], d["last_status"], d["next_at"]) == (
        h["X-Janua-Delivery"], "delivered", 1, 200, None)
    assert d["log"][0]["response"] == "ok" and d["log"][0]["at"] == T0 + 60


async def test_500_then_200_is_retried_after_10_s_and_both_attempts_are_logged(client, tenant, receiver, deliverer,
                                                                                clock):
    hook = await add_hook(client, tenant, receiver.url)
    emit(client, tenant)
    receiver.script = [(500, "database down")]
    assert await deliverer.run_once(T0) == 1
    (d,) = await deliveries(client, tenant, hook["id"])
    assert (d["state"], d["attempts"], d["next_at"], d["last_status"]) == ("pending", 1, T0 + 10, 500)
    assert await deliverer.run_once(T0 + 9) == 0          # not due yet
    assert await deliverer.run_once(T0 + 10) == 1
    (d,) = await deliveries(client, tenant, hook["id"])
    assert (d["state"], d["attempts"], d["last_status"]) == ("delivered", 2, 200)
    assert [(a["n"], a["at"], a["status"], a["error"], a["response"]) for a in d["log"]] == [
        (1, T0, 500, None, "database down"), (2, T0 + 10, 200, None, "ok")]
    a, b = receiver.requests
    assert a["headers"]["X-Janua-Delivery"] == b["headers"]["X-Janua-Delivery"]   # receivers drop duplicates by it
    assert a["body"] == b["body"]
    assert a["headers"]["X-Janua-Signature"].startswith(f"t={T0},")
    assert b["headers"]["X-Janua-Signature"].startswith(f"t={T0 + 10},")


async def test_failing_receiver_is_retried_on_the_schedule_then_failed(client, tenant, receiver, deliverer):
    hook = await add_hook(client, tenant, receiver.url)
    emit(client, tenant)
    receiver.default = (503, "")
    # the attempts' times: T0, then 10 s, 1 min, 5 min, 30 min, 2 h and 6 h after the previous one
    times = [T0, T0 + 10, T0 + 70, T0 + 370, T0 + 2170, T0 + 9370, T0 + 30970]
    for i, t in enumerate(times):
        if i:
            assert await deliverer.run_once(t - 1) == 0
        assert await deliverer.run_once(t) == 1
    assert await deliverer.run_once(T0 + 10 ** 6) == 0
    (d,) = await deliveries(client, tenant, hook["id"])
    assert (d["state"], d["attempts"], d["next_at"]) == ("failed", 7, None)
    assert [a["at"] for a in d["log"]] == times


async def test_receiver_that_never_answers_times_out_and_is_retried(client, tenant, receiver, deliverer):
    hook = await add_hook(client, tenant, receiver.url)
    emit(client, tenant)
    receiver.script = ["hang"]
    assert await asyncio.wait_for(deliverer.run_once(T0), 5) == 1
    (d,) = await deliveries(client, tenant, hook["id"])
    assert (d["state"], d["attempts"], d["next_at"], d["last_status"]) == ("pending", 1, T0 + 10, None)
    assert d["last_error"] == "timeout after 0.5 s" and d["log"][0]["error"] == "timeout after 0.5 s"
    assert 400 <= d["log"][0]["duration_ms"] < 3000
    assert await deliverer.run_once(T0 + 10) == 1
    (d,) = await deliveries(client, tenant, hook["id"])
    assert (d["state"], d["attempts"]) == ("delivered", 2)


async def test_redirect_is_not_followed_and_counts_as_a_failure(client, tenant, receiver, deliverer):
    hook = await add_hook(client, tenant, receiver.url + "/a")
    emit(client, tenant)
    receiver.script = [("redirect", "/elsewhere")]
    await deliverer.run_once(T0)
    assert [r["path"] for r in receiver.requests] == ["/a"]
    (d,) = await deliveries(client, tenant, hook["id"])
    assert (d["state"], d["last_status"], d["next_at"]) == ("pending", 302, T0 + 10)


async def test_only_the_first_256_bytes_of_a_response_are_logged(client, tenant, receiver, deliverer):
    hook = await add_hook(client, tenant, receiver.url)
    emit(client, tenant)
    receiver.script = [(500, "e" * 5000)]
    await deliverer.run_once(T0)
    (d,) = await deliveries(client, tenant, hook["id"])
    assert d["log"][0]["response"] == "e" * 256


async def test_unreachable_receiver_is_logged_as_an_error_and_retried(client, tenant, receiver, deliverer):
    url = receiver.url
    await receiver.runner.cleanup()                      # nothing listens on that port now
    hook = await add_hook(client, tenant, url)
    emit(client, tenant)
    await deliverer.run_once(T0)
    (d,) = await deliveries(client, tenant, hook["id"])
    assert (d["state"], d["last_status"], d["next_at"]) == ("pending", None, T0 + 10)
    assert d["last_error"].startswith("ClientConnectorError")


async def test_event_the_webhook_did_not_subscribe_to_is_not_sent(client, tenant, receiver, deliverer):
    hook = await add_hook(client, tenant, receiver.url, events=["device.quarantined"])
    emit(client, tenant, "attestation.failed")
    emit(client, tenant, "gateway.cut_off")
    assert await deliverer.run_once(T0) == 0
    assert receiver.requests == [] and await deliveries(client, tenant, hook["id"]) == []
    emit(client, tenant, "device.quarantined")
    assert await deliverer.run_once(T0) == 1
    assert [r["headers"]["X-Janua-Event"] for r in receiver.requests] == ["device.quarantined"]


async def test_deleted_webhook_gets_nothing_more(client, tenant, receiver, deliverer):
    hook = await add_hook(client, tenant, receiver.url)
    emit(client, tenant)
    receiver.script = [(500, "")]
    await deliverer.run_once(T0)                         # pending, due again at T0 + 10
    assert len(receiver.requests) == 1
    r = await client.delete(f"/v1/webhooks/{hook['id']}", headers=tenant.headers)
    assert r.status == 204
    emit(client, tenant, now=T0 + 1)
    assert await deliverer.run_once(T0 + 100) == 0
    assert len(receiver.requests) == 1
    r = await client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=tenant.headers)
    assert r.status == 404


async def test_events_before_a_webhook_existed_are_not_sent_to_it(client, tenant, receiver, deliverer):
    emit(client, tenant)                                  # not yet fanned out when the webhook is added
    hook = await add_hook(client, tenant, receiver.url)
    assert await deliverer.run_once(T0) == 0 and receiver.requests == []
    emit(client, tenant)
    assert await deliverer.run_once(T0) == 1
    assert len(await deliveries(client, tenant, hook["id"])) == 1


async def test_test_event_goes_to_that_webhook_only(client, tenant, receiver, deliverer, clock):
    one = await add_hook(client, tenant, receiver.url + "/one")
    await add_hook(client, tenant, receiver.url + "/two")
    other = AdminTenant(client.app, "other", clock)
    await add_hook(client, other, receiver.url + "/other")
    r = await client.post(f"/v1/webhooks/{one['id']}/test", headers=tenant.headers)
    assert r.status == 202
    event_id = (await r.json())["event_id"]
    assert await deliverer.run_once(T0) == 1
    (req,) = receiver.requests
    assert req["path"] == "/one" and req["headers"]["X-Janua-Event"] == "webhook.test"
    assert json.loads(req["body"]) == {"id": event_id, "event": "webhook.test", "tenant": tenant.id, "created": T0,
                                       "data": {"webhook_id": one["id"], "message": "a test event from janua"}}


async def test_other_tenants_webhook_gets_none_of_this_tenants_events(client, tenant, receiver, deliverer, clock):
    other = AdminTenant(client.app, "other", clock)
    await add_hook(client, other, receiver.url + "/other")
    await add_hook(client, tenant, receiver.url + "/mine")
    emit(client, tenant)
    await deliverer.run_once(T0)
    assert [r["path"] for r in receiver.requests] == ["/mine"]


async def test_two_delivery_loops_on_one_registry_do_not_send_a_delivery_twice(client, tenant, receiver, config):
    hook = await add_hook(client, tenant, receiver.url)
    for _ in range(3):
        emit(client, tenant)
    import aiohttp
    second = another_instance(config)
    async with aiohttp.ClientSession() as s1, aiohttp.ClientSession() as s2:
        a = Deliverer(client.app[STORAGE], client.app[SEALER], s1, timeout_s=5, private_targets=True)
        b = Deliverer(second, client.app[SEALER], s2, timeout_s=5, private_targets=True)
        receiver.hold = asyncio.Event()                  # every request waits until both loops have run a pass
        pa = asyncio.ensure_future(a.run_once(T0))
        pb = asyncio.ensure_future(b.run_once(T0))
        await asyncio.wait_for(receiver.arrived.wait(), 5)
        await asyncio.sleep(0.05)                        # let the other pass claim (or find nothing)
        receiver.hold.set()
        counts = await asyncio.wait_for(asyncio.gather(pa, pb), 5)
        assert sorted(counts) == [0, 3]
        assert await b.run_once(T0 + 10 ** 5) == 0 and await a.run_once(T0 + 10 ** 5) == 0
    second.close()
    ids = [r["headers"]["X-Janua-Delivery"] for r in receiver.requests]
    assert len(ids) == 3 and len(set(ids)) == 3
    assert [d["state"] for d in await deliveries(client, tenant, hook["id"])] == ["delivered"] * 3


async def test_a_delivery_whose_sender_died_is_taken_over_after_the_lease(client, tenant, receiver, deliverer,
                                                                           config):
    hook = await add_hook(client, tenant, receiver.url)
    emit(client, tenant)
    st = client.app[STORAGE]
    st.fan_out(T0, lambda: "dlv_" + "0" * 24, core.matches)
    (seq,) = st.due_deliveries(T0, 10)
    assert st.claim_delivery(seq, T0, "dead-instance", T0 + 60) is not None   # claimed, then the sender died
    assert await deliverer.run_once(T0 + 59) == 0 and receiver.requests == []
    assert await deliverer.run_once(T0 + 60) == 1
    assert [r["headers"]["X-Janua-Delivery"] for r in receiver.requests] == ["dlv_" + "0" * 24]
    # the dead sender's late result does not overwrite the new one
    late = {"at": T0 + 61, "status": 500, "error": None, "duration_ms": 1, "response": ""}
    assert st.finish_attempt(seq, "dead-instance", late, "pending", T0 + 70, T0 + 61) is False
    (d,) = await deliveries(client, tenant, hook["id"])
    assert (d["state"], d["attempts"]) == ("delivered", 1)


async def test_the_apps_background_task_delivers_without_being_driven(aiohttp_client, config, receiver, clock):
    from verifier.app import create_app
    config.notify_tick_s = 0.02
    client = await aiohttp_client(create_app(config))
    tenant = AdminTenant(client.app, "acme", clock)
    await add_hook(client, tenant, receiver.url)
    emit(client, tenant)
    await asyncio.wait_for(receiver.arrived.wait(), 5)
    assert receiver.requests[0]["headers"]["X-Janua-Event"] == "device.quarantined"


async def test_claim_lost_to_another_instance_between_select_and_update_sends_nothing(client, tenant, receiver,
                                                                                      config):
    # both instances read the same due deliveries, then both try to claim them: only the first may win
    await add_hook(client, tenant, receiver.url)
    for _ in range(3):
        emit(client, tenant)
    a, b = client.app[STORAGE], another_instance(config)
    a.fan_out(T0, iter(f"dlv_{i:024x}" for i in range(3)).__next__, core.matches)
    due_a, due_b = a.due_deliveries(T0, 10), b.due_deliveries(T0, 10)
    assert len(due_a) == 3 and due_b == due_a
    assert all(a.claim_delivery(seq, T0, "lease-a", T0 + 60) is not None for seq in due_a)
    assert [b.claim_delivery(seq, T0, "lease-b", T0 + 60) for seq in due_b] == [None, None, None]
    b.close()


@pytest.mark.parametrize("host, error", [
    ("127.0.0.1", "OSError: 127.0.0.1 is not a public address (private targets are not allowed)"),
    ("localhost", "ClientConnectorDNSError: Cannot connect to host localhost:{port} ssl:default "
                  "[localhost has no public address (private targets are not allowed)]")])
async def test_private_target_is_not_called_unless_allowed(aiohttp_client, config, receiver, clock, host, error):
    from verifier.app import create_app
    config.notify_private_targets = False
    client = await aiohttp_client(create_app(config))
    tenant = AdminTenant(client.app, "acme", clock)
    port = receiver.url.rsplit(":", 1)[1]
    hook = await add_hook(client, tenant, f"http://{host}:{port}/")
    emit(client, tenant)
    assert await client.app[NOTIFY].run_once(T0) == 1
    assert receiver.requests == []
    (d,) = await deliveries(client, tenant, hook["id"])
    assert (d["state"], d["last_status"], d["last_error"]) == ("pending", None, error.format(port=port))


@pytest.mark.parametrize("host, public", [("127.0.0.1", False), ("10.1.2.3", False), ("192.168.0.1", False),
                                          ("169.254.169.254", False), ("100.64.0.1", False), ("::1", False),
                                          ("fd00::1", False), ("0.0.0.0", False), ("8.8.8.8", True),
                                          ("2001:4860:4860::8888", True), ("example.com", False)])
def test_public_address_check(host, public):
    assert is_public(host) is public


async def test_secret_that_does_not_open_fails_the_delivery_and_sends_nothing(client, tenant, receiver, deliverer):
    hook = await add_hook(client, tenant, receiver.url)
    other = await add_hook(client, tenant, receiver.url + "/other")
    st = client.app[STORAGE]
    # the sealed secret of another webhook, moved onto this one's row: bound to its own id, so it must not open
    sealed = st.get_webhook(tenant.id, other["id"])["sealed_secret"]
    st._write("UPDATE notify_webhooks SET sealed_secret = ? WHERE id = ?", (sealed, hook["id"]))
    r = await client.delete(f"/v1/webhooks/{other['id']}", headers=tenant.headers)
    assert r.status == 204
    emit(client, tenant)
    assert await deliverer.run_once(T0) == 1
    assert receiver.requests == []
    (d,) = await deliveries(client, tenant, hook["id"])
    assert (d["state"], d["attempts"], d["last_error"]) == ("failed", 1, "the signing secret does not open: CryptoError")
