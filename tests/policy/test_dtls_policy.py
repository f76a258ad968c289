"""DTLS and CoAP under device policies (docs/policies.md "DTLS and CoAP"): a policy without "dtls" (or whose trust
minimum the device misses) refuses the handshake with the access_denied alert after the client proved its key, as a
suspended device; access.coap_resources limits the resources (4.03 "resource not allowed by policy"); a change
applies to the next handshake or request; /ota answers the update policy. Real sockets: openssl s_client and the
mbedTLS peer of the DTLS suite."""

import asyncio
import json

import cbor2
from aiocoap import Code

from tests.dtls_verifier.conftest import clock, device, run, verifier  # noqa: F401 (fixtures)
from tests.dtls_verifier.peers import MbedTLSClient
from tests.dtls_verifier.test_interop import s_client
from verifier.appkeys import CORE


def _set(verifier, scope, key, doc):
    # as PUT /v1/policies does: store, then the caches forget the tenant's policies
    verifier.storage.put_policy(verifier.tenant["id"], scope, key, doc, verifier.clock(), "test")
    verifier.app[CORE].forget_tenant(verifier.tenant["id"])


def _reasons(verifier):
    return [(r["result"], r["reason"]) for r in verifier.all_audit() if r["action"] == "dtls"]


async def test_a_policy_without_dtls_refuses_the_handshake_then_allows_it_again(verifier, device):
    rc, out, err = await run(s_client(verifier.port, device.identity, device.psk.hex()))
    assert rc == 0, err                           # the device's state is cached now
    _set(verifier, "device", device.hex, {"auth": {"protocols": ["binauth_udp"]}})
    rc, out, err = await run(s_client(verifier.port, device.identity, device.psk.hex()))
    assert rc != 0 and "alert access denied" in err, err
    _set(verifier, "device", device.hex, {})
    rc, out, err = await run(s_client(verifier.port, device.identity, device.psk.hex()))
    assert rc == 0, err
    reasons = _reasons(verifier)
    assert [r[0] for r in reasons] == ["OK", "NOT_ACTIVE", "OK"]
    assert reasons[1] == ("NOT_ACTIVE", "policy: protocol dtls not allowed")


async def test_trust_below_the_minimum_refuses_the_handshake(verifier):
    dev = verifier.device(trust_level=10)
    _set(verifier, "tenant", "default", {"auth": {"min_trust_level": 11}})
    rc, out, err = await run(s_client(verifier.port, dev.identity, dev.psk.hex()))
    assert rc != 0 and "alert access denied" in err, err
    assert _reasons(verifier) == [("NOT_ACTIVE", "policy: trust level 10 below 11")]


async def test_coap_resources_and_permissions_of_the_policy(verifier, device):
    _set(verifier, "device", device.hex, {"access": {"coap_resources": ["/auth", "/config"], "permissions": 0}})

    def session():
        client = MbedTLSClient(verifier.port, device.identity, device.psk).handshake()
        try:
            got = [client.request(code, path, mid=i) for i, (code, path) in enumerate((
                (Code.POST, "auth"), (Code.GET, "ota"), (Code.POST, "telemetry"), (Code.GET, "config")), 1)]
            _set(verifier, "device", device.hex, {"access": {"coap_resources": ["/telemetry"]}})
            return got, client.request(Code.POST, "telemetry", mid=9), client.request(Code.POST, "auth", mid=10)
        finally:
            client.close()
    got, telemetry, auth = await asyncio.to_thread(session)
    assert [(m.code, m.payload) for m in got[1:]] == [
        (Code.FORBIDDEN, b"resource not allowed by policy"), (Code.FORBIDDEN, b"resource not allowed by policy"),
        (Code.FORBIDDEN, b"permission missing")]           # /config is allowed, but the policy's bits are 0
    assert got[0].code == Code.CHANGED
    assert telemetry.code != Code.FORBIDDEN                 # the change applies within the open session
    assert (auth.code, auth.payload) == (Code.FORBIDDEN, b"resource not allowed by policy")


# The CoAP /ota resource answers the update policy as POST /v1/ota/check does (docs/policies.md 3). The clock is
# tests.support.T0, 2026-01-01 00:00 UTC, a Thursday: 01:00 in Berlin (CET, UTC+1).
OTA_POLICY_CASES = [
    (None, {"available": False}),
    ({"allowed": False}, {"available": False, "policy": {
        "decision": "refused", "reason": "policy: updates not allowed", "deferred_until": None}}),
    ({"mode": "manual"}, {"available": False, "policy": {
        "decision": "refused", "reason": "policy: manual updates (no rollout offers a release)",
        "deferred_until": None}}),
    ({"mode": "window"}, {"available": False, "policy": {
        "decision": "refused", "reason": "policy: window mode without a window", "deferred_until": None}}),
    # 02:00 Berlin is 01:00 UTC: 1767225600 + 3600
    ({"mode": "window", "window": {"start": "02:00", "end": "03:00", "tz": "Europe/Berlin"}},
     {"available": False, "policy": {"decision": "deferred", "reason": "policy: outside the maintenance window",
                                     "deferred_until": 1767229200}}),
    # inside 00:30-02:00 Berlin: nothing held back, no policy object
    ({"mode": "window", "window": {"start": "00:30", "end": "02:00", "tz": "Europe/Berlin"}}, {"available": False}),
]


async def test_coap_ota_answers_the_update_policy(verifier, device):
    answers = []

    def session():
        client = MbedTLSClient(verifier.port, device.identity, device.psk).handshake()
        try:
            for i, (update, _) in enumerate(OTA_POLICY_CASES, 1):
                doc = {"access": {"permissions": 4}}             # the /ota bit (protocol.md 3.6)
                if update is not None:
                    doc["update"] = update
                _set(verifier, "device", device.hex, doc)        # applies within the open session
                answers.append(client.request(Code.GET, "ota", mid=i))
            _set(verifier, "device", device.hex, {"access": {"permissions": 4}, "update": {"allowed": False}})
            answers.append(client.request(Code.GET, "ota", mid=99, accept=60))
        finally:
            client.close()
    await asyncio.to_thread(session)
    assert [m.code for m in answers] == [Code.CONTENT] * (len(OTA_POLICY_CASES) + 1)
    assert [json.loads(m.payload) for m in answers[:-1]] == [want for _, want in OTA_POLICY_CASES]
    assert cbor2.loads(answers[-1].payload) == {"available": False, "policy": {
        "decision": "refused", "reason": "policy: updates not allowed", "deferred_until": None}}
