"""Compact device JWTs (docs/tokens.md section 2): issue, refresh, whoami, immediate invalidation on
suspension, strict validation, the JWKS as a third party uses it, introspection."""

import base64
import json

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from verifier.tokens import core as tokens
from verifier.appkeys import STORAGE


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64e(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def parts(token):
    h, p, s = token.split(".")
    return json.loads(b64d(h)), json.loads(b64d(p)), b64d(s)


async def test_issued_token_is_compact_es256_with_minimal_claims(client, tenant, clock):
    dev = tenant.devices(1)[0]
    body = await dev.obtain(client)
    header, claims, sig = parts(body["token"])
    now = int(clock())
    assert header == {"alg": "ES256", "kid": header["kid"]} and len(header["kid"]) == 8
    assert claims == {"sub": dev.hex, "iat": now, "exp": now + 3600, "scp": "telemetry config ota commands",
                      "tid": tokens.tenant_short_id(tenant.id)}
    assert len(claims["tid"]) <= 8 and len(sig) == 64
    assert body["token_type"] == "Bearer" and body["expires_at"] == now + 3600
    assert body["refresh_at"] == now + 3600 - 300
    assert len(body["auth"]) == 2 * 25        # the binary auth OK reply, as for /v1/ota/check
    r = await client.get("/v1/auth/device/whoami", headers=dev.bearer)
    assert await r.json() == {"device_id": dev.hex, "tenant": "tenant-a", "status": "active", "exp": now + 3600}


async def test_token_ttl_and_refresh_lead_are_tenant_policy(client, tenant, clock):
    await tenant.policy(client, token_ttl_s=600, token_refresh_s=60)
    dev = tenant.devices(1)[0]
    body = await dev.obtain(client)
    assert body["expires_at"] == int(clock()) + 600 and body["refresh_at"] == int(clock()) + 540


# out of range or of the wrong type: 400; in range but inconsistent with the stored policy (ttl 3600,
# chain_len 30): 409, as the schema cannot state a rule across fields
@pytest.mark.parametrize("policy, status", [({"token_refresh_s": 3600}, 409), ({"chain_low_water": 31}, 409),
                                            ({"chain_len": 0}, 400), ({"token_ttl_s": 10}, 400),
                                            ({"chain_period_s": "1"}, 400)])
async def test_policy_rejects_inconsistent_token_settings(client, tenant, policy, status):
    r = await client.patch("/v1/tenant", json={"policy": policy}, headers=tenant.headers)
    assert r.status == status


async def test_replayed_binary_auth_gets_no_token(client, tenant):
    dev = tenant.devices(1)[0]
    auth = dev.auth()
    r = await client.post("/v1/auth/device/token", json={"auth": auth})
    assert r.status == 200
    r = await client.post("/v1/auth/device/token", json={"auth": auth})
    body = await r.json()
    assert r.status == 409 and "token" not in body and body["error"] == "unauthenticated"


async def test_refreshed_token_works_after_the_old_one_expires(client, device, clock):
    old = device.token
    clock.advance(3600 - 300)
    r = await client.post("/v1/auth/device/refresh", headers=device.bearer)
    body = await r.json()
    assert r.status == 200 and body["expires_at"] == int(clock()) + 3600 and body["token"] != old
    clock.advance(301)                        # the old one has now expired
    r = await client.get("/v1/auth/device/whoami", headers={"Authorization": f"Bearer {old}"})
    assert r.status == 401
    device.token = body["token"]
    r = await client.get("/v1/auth/device/whoami", headers=device.bearer)
    assert r.status == 200


async def test_expired_token_cannot_be_refreshed(client, device, clock):
    clock.advance(3601)
    r = await client.post("/v1/auth/device/refresh", headers=device.bearer)
    assert r.status == 401 and r.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("action", ["suspend", "decommission"])
async def test_token_of_suspended_or_decommissioned_device_stops_working_at_once(client, tenant, device, action):
    r = await client.get("/v1/auth/device/whoami", headers=device.bearer)
    assert r.status == 200
    await tenant.lifecycle(client, device, action)
    for method, path in (("GET", "/v1/auth/device/whoami"), ("POST", "/v1/auth/device/refresh"),
                         ("POST", "/v1/auth/device/sync")):
        r = await client.request(method, path, headers=device.bearer, json={"used": [], "have": -1})
        assert r.status == 401, path


@pytest.mark.parametrize("flag", ["compromised", "quarantined"])
async def test_token_of_flagged_device_stops_working_at_once(client, tenant, device, flag):
    r = await client.patch(f"/v1/devices/{device.hex}", json={flag: True}, headers=tenant.headers)
    assert r.status == 200
    r = await client.get("/v1/auth/device/whoami", headers=device.bearer)
    assert r.status == 401


async def test_jwks_verifies_issued_tokens_like_a_third_party(client, device):
    """Only the JWKS JSON and `cryptography`: what a broker or API gateway would do."""
    r = await client.get("/.well-known/jwks.json")
    assert r.status == 200 and "max-age" in r.headers["Cache-Control"]
    jwks = json.loads(await r.text())
    h64, p64, s64 = device.token.split(".")
    kid = json.loads(b64d(h64))["kid"]
    (jwk,) = [k for k in jwks["keys"] if k["kid"] == kid]
    assert {jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]} == {"EC", "P-256", "ES256", "sig"}
    pub = ec.EllipticCurvePublicNumbers(int.from_bytes(b64d(jwk["x"]), "big"), int.from_bytes(b64d(jwk["y"]), "big"),
                                        ec.SECP256R1()).public_key()
    sig = b64d(s64)
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    pub.verify(der, f"{h64}.{p64}".encode(), ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        pub.verify(der, f"{h64}.{p64}x".encode(), ec.ECDSA(hashes.SHA256()))


def _signed(app, clock, header, claims):
    """A token signed with the verifier's real active key over arbitrary header and claims."""
    key = app[tokens.TOKEN_KEYS].active(clock())
    si = b64e(json.dumps(header).encode()) + "." + b64e(json.dumps(claims).encode())
    return si + "." + b64e(tokens.es256_sign(key.private, si.encode()))


def _forgeries(app, clock, dev, other_tenant_id):
    key = app[tokens.TOKEN_KEYS].active(clock())
    now = int(clock())
    good = {"sub": dev.hex, "iat": now, "exp": now + 600, "scp": "ota", "tid": tokens.tenant_short_id(dev.tenant.id)}
    h64, p64, s64 = dev.token.split(".")
    jwk = tokens.jwk(key.kid, key.public)
    mac = hmac.HMAC(json.dumps(jwk).encode(), hashes.SHA256())
    hs_si = b64e(b'{"alg":"HS256","kid":"%s"}' % key.kid.encode()) + "." + p64
    mac.update(hs_si.encode())
    claims = json.loads(b64d(p64))
    return {
        "alg_none": b64e(b'{"alg":"none"}') + "." + p64 + ".",
        "alg_none_with_kid": b64e(json.dumps({"alg": "none", "kid": key.kid}).encode()) + "." + p64 + "." + s64,
        "alg_hs256_key_confusion": hs_si + "." + b64e(mac.finalize()),
        "unknown_kid": _signed(app, clock, {"alg": "ES256", "kid": "00000000"}, good),
        "embedded_jwk": _signed(app, clock, {"alg": "ES256", "kid": key.kid, "jwk": jwk}, good),
        "crit_header": _signed(app, clock, {"alg": "ES256", "kid": key.kid, "crit": ["exp"]}, good),
        "claims_tampered": f'{h64}.{b64e(json.dumps({**claims, "exp": claims["exp"] + 10 ** 6}).encode())}.{s64}',
        "signature_flipped": h64 + "." + p64 + "." + b64e(bytes([b64d(s64)[0] ^ 1]) + b64d(s64)[1:]),
        "signature_der": h64 + "." + p64 + "." + b64e(encode_dss_signature(1, 1)),
        "no_exp": _signed(app, clock, {"alg": "ES256", "kid": key.kid}, {k: v for k, v in good.items() if k != "exp"}),
        "exp_as_string": _signed(app, clock, {"alg": "ES256", "kid": key.kid}, {**good, "exp": str(now + 600)}),
        "sub_not_device_id": _signed(app, clock, {"alg": "ES256", "kid": key.kid}, {**good, "sub": "admin"}),
        "sub_unknown_device": _signed(app, clock, {"alg": "ES256", "kid": key.kid}, {**good, "sub": "00" * 8}),
        "tid_of_other_tenant": _signed(app, clock, {"alg": "ES256", "kid": key.kid},
                                       {**good, "tid": tokens.tenant_short_id(other_tenant_id)}),
        "not_yet_valid": _signed(app, clock, {"alg": "ES256", "kid": key.kid}, {**good, "nbf": now + 600}),
        "two_segments": h64 + "." + p64,
        "garbage": "x" * 40,
        "oversized": h64 + "." + p64 + "A" * 2000 + "." + s64,
    }


FORGERIES = ["alg_none", "alg_none_with_kid", "alg_hs256_key_confusion", "unknown_kid", "embedded_jwk", "crit_header",
             "claims_tampered", "signature_flipped", "signature_der", "no_exp", "exp_as_string", "sub_not_device_id",
             "sub_unknown_device", "tid_of_other_tenant", "not_yet_valid", "two_segments", "garbage", "oversized"]


@pytest.mark.parametrize("forgery", FORGERIES)
async def test_forged_or_tampered_token_is_refused(client, tenant, other, device, clock, forgery):
    token = _forgeries(client.app, clock, device, other.id)[forgery]
    for method, path in (("GET", "/v1/auth/device/whoami"), ("POST", "/v1/auth/device/refresh")):
        r = await client.request(method, path, headers={"Authorization": f"Bearer {token}"})
        assert r.status == 401, (forgery, path)
    r = await client.post("/v1/tokens/introspect", json={"token": token}, headers=tenant.headers)
    assert await r.json() == {"active": False}


async def test_crafted_token_with_real_key_and_good_claims_is_accepted(client, device, clock):
    """The control for the forgeries above: the same construction with nothing wrong works."""
    now = int(clock())
    good = {"sub": device.hex, "iat": now, "exp": now + 600, "scp": "ota",
            "tid": tokens.tenant_short_id(device.tenant.id)}
    token = _signed(client.app, clock, {"alg": "ES256", "kid": client.app[tokens.TOKEN_KEYS].active(now).kid}, good)
    r = await client.get("/v1/auth/device/whoami", headers={"Authorization": f"Bearer {token}"})
    assert r.status == 200


async def test_missing_bearer_is_refused(client):
    for headers in ({}, {"Authorization": "Basic Zm9vOmJhcg=="}, {"Authorization": "Bearer "}):
        r = await client.get("/v1/auth/device/whoami", headers=headers)
        assert r.status == 401


async def test_introspection_is_tenant_scoped(client, tenant, other, device, clock):
    r = await client.post("/v1/tokens/introspect", json={"token": device.token}, headers=tenant.headers)
    body = await r.json()
    assert body["active"] is True and body["sub"] == device.hex and body["scope"] == body["scp"]
    assert body["exp"] == int(clock()) + 3600
    r = await client.post("/v1/tokens/introspect", json={"token": device.token}, headers=other.headers)
    assert await r.json() == {"active": False}
    r = await client.post("/v1/tokens/introspect", json={"token": device.token})
    assert r.status == 401
    r = await client.post("/v1/tokens/introspect", json={"nope": 1}, headers=tenant.headers)
    assert r.status == 400
    await tenant.lifecycle(client, device, "suspend")
    r = await client.post("/v1/tokens/introspect", json={"token": device.token}, headers=tenant.headers)
    assert await r.json() == {"active": False}


async def test_token_issue_and_refresh_are_audited(client, tenant, device):
    await client.post("/v1/auth/device/refresh", headers=device.bearer)
    entries = client.app[STORAGE].list_audit(tenant.id, device.hex)
    actions = [e["action"] for e in entries if e["kind"] == "auth"]
    assert "token.issue" in actions and "token.refresh" in actions
    assert all(device.token not in (e["reason"] or "") for e in entries)
