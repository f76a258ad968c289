"""Device policies at the edge verifier (docs/policies.md 4): the upstream resolves each device's authentication rule
(protocols allowed, trust and attestation refusal, drift, permissions) and sends it in the device's entry, so the
edge refuses binary auth that the cloud would refuse. A rule reaches the edge with the entry: an on-demand fetch, a
sync that carries the device (a change of an edge column: status, flags, permissions, secret), or the refresh of an
entry older than cache_ttl_s; a policy document or a trust level changed alone waits for that refresh."""

import asyncio

import pytest

from edgeworld import binauth_http, udp_exchange
from verifier.binauth.core import NOT_ACTIVE, OK
from verifier.edge.app import EDGE
from verifier.edge.core import EdgeError, parse_entry
from verifier.policy.core import decode_auth_rule, encode_auth_rule


async def _call(w, method, path, doc=None, status=(200, 201, 204)):
    r = await w.http.request(method, w.cloud.url + path, json=doc, headers=w.admin)
    assert r.status in status, await r.text()


async def _http_status(w, edge, dev):
    req, reply = await binauth_http(w, edge, dev)
    return dev.reply(req, reply)["status"]


async def _udp_status(edge, dev):
    req = dev.request()
    reply = await asyncio.get_running_loop().run_in_executor(None, udp_exchange, edge.udp_port, req)
    return dev.reply(req, reply)["status"]


async def test_the_edge_refuses_a_protocol_the_device_policy_forbids(world):
    dev, = world.devices(1)
    await _call(world, "PUT", f"/v1/policies/device/{dev.hex}", {"auth": {"protocols": ["binauth_udp", "token"]}})
    edge = await world.start_edge()
    assert await _http_status(world, edge, dev) == NOT_ACTIVE      # fetched on demand, with its rule
    assert await _udp_status(edge, dev) == OK
    e = edge.app[EDGE].entry(dev.id)
    assert (sorted(e.rule.protocols), e.rule.refusal) == (["binauth_udp", "token"], None)


async def test_a_trust_minimum_at_the_edge_and_a_raise_that_arrives_with_a_synced_change(world, clock):
    dev, = world.devices(1)
    await _call(world, "PUT", "/v1/policies/tenant/default", {"auth": {"min_trust_level": 60}})
    edge = await world.start_edge()
    core = edge.app[EDGE]
    assert await core.sync(clock())
    assert await _udp_status(edge, dev) == NOT_ACTIVE
    assert core.entry(dev.id).rule.refusal == "policy: trust level 50 below 60"
    # trust_level is no edge column (verifier/registry/store.py EDGE_COLUMNS): the sync does not carry it alone ...
    await _call(world, "PATCH", f"/v1/devices/{dev.hex}", {"trust_level": 60})
    assert await core.sync(clock())
    assert await _udp_status(edge, dev) == NOT_ACTIVE
    # ... but with a change of one (here the permissions) the entry comes again, its rule resolved anew
    await _call(world, "PATCH", f"/v1/devices/{dev.hex}", {"permissions": 7})
    assert await core.sync(clock())
    assert core.entry(dev.id).rule.permissions == 7
    assert await _udp_status(edge, dev) == OK


async def test_a_policy_change_reaches_the_edge_with_the_refresh_of_the_entry(world, clock):
    dev, = world.devices(1)
    await _call(world, "PUT", f"/v1/policies/device/{dev.hex}", {"auth": {"protocols": ["dtls"]}})
    edge = await world.start_edge()
    core = edge.app[EDGE]
    assert await _http_status(world, edge, dev) == NOT_ACTIVE
    await _call(world, "DELETE", f"/v1/policies/device/{dev.hex}")
    assert await core.sync(clock())          # a policy document is no change of the device: the rule stays
    assert await _http_status(world, edge, dev) == NOT_ACTIVE
    clock.advance(3600)                      # cache_ttl_s: this request is answered from the entry and refreshes it
    assert await _http_status(world, edge, dev) == NOT_ACTIVE
    for _ in range(100):
        if core.entry(dev.id).fetched_at >= clock():
            break
        await asyncio.sleep(0.02)
    assert await _http_status(world, edge, dev) == OK


RULE = {"protocols": ["dtls", "binauth_udp"], "refusal": None, "drift_s": 300, "permissions": 7}


def test_an_auth_rule_round_trips_and_a_malformed_one_is_refused():
    rule = decode_auth_rule(RULE)
    assert (rule.protocols, rule.refusal, rule.drift_s, rule.permissions) == \
        (frozenset({"dtls", "binauth_udp"}), None, 300, 7)
    assert encode_auth_rule(rule) == {"protocols": ["binauth_udp", "dtls"], "refusal": None, "drift_s": 300,
                                      "permissions": 7}


@pytest.mark.parametrize("bad", [
    {**RULE, "protocols": ["telnet"]}, {**RULE, "protocols": "dtls"}, {**RULE, "refusal": 1},
    {**RULE, "drift_s": "300"}, {**RULE, "permissions": True}, {**RULE, "extra": 1},
    {k: v for k, v in RULE.items() if k != "refusal"}, [], "rule"])
def test_a_malformed_auth_rule_from_upstream_is_an_edge_error_not_a_crash(bad):
    with pytest.raises(ValueError):
        decode_auth_rule(bad)
    doc = {"device_id": "00112233445566ff", "binauth_key": "ab" * 32, "tenant_id": "t", "status": "active",
           "permissions": 15, "blocked": False, "chain_revoked": False, "policy": {}, "auth_rule": bad}
    with pytest.raises(EdgeError, match="auth_rule"):
        parse_entry(doc, 0)
