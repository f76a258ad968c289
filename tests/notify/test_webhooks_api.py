"""The webhook admin routes: what a webhook is made of and what is refused, the secret shown exactly once
and nowhere else (responses, logs, the database file), tenant scope, the signature vector of
docs/vectors/webhook.json, and pruning of the delivery log."""

import base64
import json
import logging
import re
from pathlib import Path

import pytest

from tests.support import T0, AdminTenant
from verifier.appkeys import STORAGE
from verifier.notify import core
from verifier.notify.delivery import KEEP_S, MAX_PER_WEBHOOK, OUTBOX_KEEP_S

VECTOR = json.loads((Path(__file__).resolve().parents[2] / "docs" / "vectors" / "webhook.json").read_text())
ALL = ["attestation.failed", "attestation.missed", "device.quarantined", "device.released",
       "gateway.attestation.failed", "gateway.cut_off", "alert.opened"]


async def test_created_webhook_has_every_event_by_default_and_a_43_character_secret(client, tenant, clock):
    r = await client.post("/v1/webhooks", json={"url": "https://soc.example.com/janua", "description": "SOC"},
                          headers=tenant.headers)
    assert r.status == 201 and r.headers["Cache-Control"] == "no-store"
    body = await r.json()
    assert set(body) == {"id", "url", "events", "description", "created", "secret"}
    assert re.fullmatch(r"whk_[0-9a-f]{16}", body["id"])
    assert (body["url"], body["events"], body["description"], body["created"]) == (
        "https://soc.example.com/janua", ALL, "SOC", T0)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", body["secret"])
    assert len(base64.urlsafe_b64decode(body["secret"] + "=")) == 32
    r = await client.get(f"/v1/webhooks/{body['id']}", headers=tenant.headers)
    assert await r.json() == {"id": body["id"], "url": "https://soc.example.com/janua", "events": ALL,
                              "description": "SOC", "created": T0}


async def test_events_are_kept_in_the_documented_order_whatever_order_they_are_given_in(client, tenant):
    r = await client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/x",
                                                "events": ["gateway.cut_off", "attestation.failed"]},
                          headers=tenant.headers)
    assert (await r.json())["events"] == ["attestation.failed", "gateway.cut_off"]


@pytest.mark.parametrize("body", [
    {}, {"url": None}, {"url": 5}, {"url": "ftp://example.com/x"}, {"url": "example.com/hook"},
    {"url": "https://user:pw@example.com/hook"}, {"url": "http://example.com:65536/"}, {"url": "http://:80/"},
    {"url": "http://[::1]:8080/"}, {"url": "http://example.com/a b"}, {"url": "http://exämple.com/"},
    {"url": "http://example.com/" + "a" * 2030}, {"url": "http://example.com/", "events": []},
    {"url": "http://example.com/", "events": ["device.quarantined", "device.quarantined"]},
    {"url": "http://example.com/", "events": ["webhook.test"]}, {"url": "http://example.com/", "events": "all"},
    {"url": "http://example.com/", "events": [{"e": 1}]}, {"url": "http://example.com/", "description": None},
    {"url": "http://example.com/", "description": ""}, {"url": "http://example.com/", "description": "a\nb"},
    {"url": "http://example.com/", "secret": "mine"}, [], "http://example.com/"])
async def test_malformed_webhook_is_refused_and_nothing_is_stored(client, tenant, body):
    r = await client.post("/v1/webhooks", json=body, headers=tenant.headers)
    assert r.status == 400 and (await r.json())["error"] == "invalid_request"
    r = await client.get("/v1/webhooks", headers=tenant.headers)
    assert await r.json() == {"webhooks": []}


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hook", "HTTPS://Hooks.Example.com/a?b=c&d=%20#f",
                                 "http://localhost", "https://h:0/", "http://a.b.c:65535"])
async def test_well_formed_url_is_accepted(client, tenant, url):
    r = await client.post("/v1/webhooks", json={"url": url}, headers=tenant.headers)
    assert r.status == 201


async def test_twenty_first_webhook_of_a_tenant_is_409(client, tenant):
    for i in range(20):
        r = await client.post("/v1/webhooks", json={"url": f"https://h/{i}"}, headers=tenant.headers)
        assert r.status == 201
    r = await client.post("/v1/webhooks", json={"url": "https://h/20"}, headers=tenant.headers)
    assert r.status == 409
    assert len((await (await client.get("/v1/webhooks", headers=tenant.headers)).json())["webhooks"]) == 20


async def test_other_tenants_webhook_is_404_on_every_route(client, tenant, clock):
    r = await client.post("/v1/webhooks", json={"url": "https://h/"}, headers=tenant.headers)
    wid = (await r.json())["id"]
    other = AdminTenant(client.app, "other", clock)
    for method, path in [("GET", ""), ("DELETE", ""), ("POST", "/test"), ("GET", "/deliveries")]:
        r = await client.request(method, f"/v1/webhooks/{wid}{path}", headers=other.headers)
        assert r.status == 404, (method, path)
    assert (await (await client.get("/v1/webhooks", headers=other.headers)).json()) == {"webhooks": []}
    assert (await client.get(f"/v1/webhooks/{wid}", headers=tenant.headers)).status == 200


@pytest.mark.parametrize("wid", ["whk_0000000000000000", "nope", "WHK_0123456789ABCDEF"])
async def test_unknown_or_malformed_webhook_id_is_404(client, tenant, wid):
    assert (await client.get(f"/v1/webhooks/{wid}", headers=tenant.headers)).status == 404


async def test_webhook_routes_need_an_admin_token(client):
    assert (await client.get("/v1/webhooks")).status == 401
    assert (await client.post("/v1/webhooks", json={"url": "https://h/"})).status == 401


async def test_secret_is_in_no_log_list_response_or_database_file(client, tenant, receiver, deliverer, config,
                                                                   caplog):
    caplog.set_level(logging.DEBUG)
    r = await client.post("/v1/webhooks", json={"url": receiver.url}, headers=tenant.headers)
    hook = await r.json()
    secret = hook["secret"]
    raw = base64.urlsafe_b64decode(secret + "=")
    await client.post(f"/v1/webhooks/{hook['id']}/test", headers=tenant.headers)
    core.emit(client.app[STORAGE], tenant.id, "device.quarantined", {"device_id": "3f9a0c1b7d2e4a65"}, T0)
    receiver.script = [(500, "no"), "hang"]
    await deliverer.run_once(T0)                        # one 500 and one timeout: logged failures
    texts = [await (await client.get(p, headers=tenant.headers)).text() for p in (
        "/v1/webhooks", f"/v1/webhooks/{hook['id']}", f"/v1/webhooks/{hook['id']}/deliveries", "/v1/audit")]
    assert len(texts[2]) > 100 and "timeout" in texts[2]
    for text in texts + [caplog.text]:
        assert secret not in text
    files = b"".join(p.read_bytes() for p in Path(config.db_path).parent.glob("janua.db*"))
    assert secret.encode() not in files and raw not in files
    # nor in any row, whichever backend holds them (under PostgreSQL there is no file to read)
    for table in ("notify_webhooks", "notify_outbox", "notify_deliveries", "notify_attempts", "audit"):
        for row in client.app[STORAGE]._db.execute(f"SELECT * FROM {table}").fetchall():
            for v in row:
                b = bytes(v) if isinstance(v, (bytes, memoryview)) else str(v).encode()
                assert secret.encode() not in b and raw not in b, table
    # what the receivers got was signed with it, so it was in use
    for req in receiver.requests:
        core.verify_signature(secret, req["headers"]["X-Janua-Signature"], req["body"], T0)


def test_signature_vector():
    assert core.secret_text(bytes.fromhex(VECTOR["secret_bytes"])) == VECTOR["secret"]
    assert VECTOR["signed"] == f"{VECTOR['t']}.{VECTOR['body']}"
    assert core.sign(VECTOR["secret"], VECTOR["t"], VECTOR["body"].encode()) == VECTOR["header"]
    assert VECTOR["header"] == "t=1767225660,v1=cd5881b39011adaecea3ea473db28c4685511ec25ad563a4bbf93ba17051e44d"
    assert core.verify_signature(VECTOR["secret"], VECTOR["header"], VECTOR["body"].encode(), 1767225700) == 1767225660


@pytest.mark.parametrize("header, body, now, why", [
    ("t=1767225660,v1=" + "0" * 64, None, 1767225660, "does not verify"),
    (None, b'{"id":43}', 1767225660, "does not verify"),                            # another body
    (None, None, 1767225660 + 301, "outside the tolerance"),                         # replayed later
    (None, None, 1767225660 - 301, "outside the tolerance"),
    ("t=1767225661,v1=cd5881b39011adaecea3ea473db28c4685511ec25ad563a4bbf93ba17051e44d", None, 1767225661,
     "does not verify"),                                                            # t moved, MAC kept
    ("v1=cd5881b39011adaecea3ea473db28c4685511ec25ad563a4bbf93ba17051e44d", None, 1767225660, "malformed"),
    ("t=1767225660", None, 1767225660, "malformed"), ("", None, 1767225660, "malformed")])
def test_signature_check_refuses_forged_replayed_or_malformed_headers(header, body, now, why):
    with pytest.raises(ValueError, match=why):
        core.verify_signature(VECTOR["secret"], VECTOR["header"] if header is None else header,
                              VECTOR["body"].encode() if body is None else body, now)


def test_retry_schedule_is_the_documented_one():
    got = [core.after_failure(n, 1000) for n in range(1, 8)]
    assert got == [("pending", 1010), ("pending", 1060), ("pending", 1300), ("pending", 2800),
                   ("pending", 8200), ("pending", 22600), ("failed", None)]


async def test_deliveries_page_newest_first_with_a_cursor(client, tenant, receiver, deliverer):
    r = await client.post("/v1/webhooks", json={"url": receiver.url}, headers=tenant.headers)
    wid = (await r.json())["id"]
    ids = [core.emit(client.app[STORAGE], tenant.id, "device.released", {"n": i}, T0) for i in range(5)]
    await deliverer.run_once(T0)
    r = await client.get(f"/v1/webhooks/{wid}/deliveries?limit=3", headers=tenant.headers)
    page = await r.json()
    assert [d["event_id"] for d in page["deliveries"]] == ids[::-1][:3]
    r = await client.get(f"/v1/webhooks/{wid}/deliveries?limit=3&cursor={page['next_cursor']}",
                         headers=tenant.headers)
    page = await r.json()
    assert [d["event_id"] for d in page["deliveries"]] == ids[1::-1] and page["next_cursor"] is None
    for q in ("limit=0", "limit=1001", "limit=x", "cursor=", "cursor=-1", "cursor=a"):
        assert (await client.get(f"/v1/webhooks/{wid}/deliveries?{q}", headers=tenant.headers)).status == 400


async def test_old_finished_deliveries_and_fanned_out_outbox_rows_are_pruned(client, tenant, receiver, deliverer):
    assert (KEEP_S, MAX_PER_WEBHOOK, OUTBOX_KEEP_S) == (30 * 86400, 1000, 7 * 86400)
    st = client.app[STORAGE]
    r = await client.post("/v1/webhooks", json={"url": receiver.url}, headers=tenant.headers)
    wid = (await r.json())["id"]
    core.emit(st, tenant.id, "device.released", {"n": 1}, T0)
    core.emit(st, tenant.id, "device.released", {"n": 2}, T0)
    receiver.script = [(200, ""), (500, "")]
    await deliverer.run_once(T0)                      # one delivered, one pending
    assert st.prune_notifications(T0 + 86400, KEEP_S, MAX_PER_WEBHOOK, OUTBOX_KEEP_S) == 0
    # 31 days later: the delivered one and its outbox row go; the pending one and its event stay
    assert st.prune_notifications(T0 + 31 * 86400, KEEP_S, MAX_PER_WEBHOOK, OUTBOX_KEEP_S) == 2
    (d,) = st.list_deliveries(wid, 10)
    assert d["state"] == "pending"
    assert [e["data"] for e in st.list_notifications(tenant.id)] == [{"n": 2}]


async def test_more_than_the_cap_of_finished_deliveries_keeps_the_newest(client, tenant, receiver, deliverer):
    st = client.app[STORAGE]
    r = await client.post("/v1/webhooks", json={"url": receiver.url}, headers=tenant.headers)
    wid = (await r.json())["id"]
    for i in range(5):
        core.emit(st, tenant.id, "device.released", {"n": i}, T0)
    await deliverer.run_once(T0)
    assert st.prune_notifications(T0, KEEP_S, 2, OUTBOX_KEEP_S) == 3
    assert [d["event_id"] for d in st.list_deliveries(wid, 10)] == [5, 4]


async def test_listed_webhooks_show_only_their_documented_fields(client, tenant):
    await client.post("/v1/webhooks", json={"url": "https://h/"}, headers=tenant.headers)
    (hook,) = (await (await client.get("/v1/webhooks", headers=tenant.headers)).json())["webhooks"]
    assert set(hook) == {"id", "url", "events", "description", "created"}
