"""The `message` of a refused binary auth request on the JSON device routes is the protocol.md 3.3 status
name in lowercase, as docs/api.md and docs/tokens.md 2.1 say (the docs once had `REPLAY` and `replay`)."""


async def test_replayed_token_request_answers_409_with_message_replay(client, tenant, clock):
    dev, = tenant.devices(1)
    req = dev.auth()
    assert (await client.post("/v1/auth/device/token", json={"auth": req})).status == 200
    r = await client.post("/v1/auth/device/token", json={"auth": req})
    body = await r.json()
    assert r.status == 409 and (body["error"], body["message"]) == ("unauthenticated", "replay")
    assert len(bytes.fromhex(body["auth"])) == 13


async def test_forged_token_request_answers_401_with_message_signature(client, tenant, clock):
    dev, = tenant.devices(1)
    req = bytearray(dev.request())
    req[-1] ^= 1
    r = await client.post("/v1/auth/device/token", json={"auth": bytes(req).hex()})
    body = await r.json()
    assert r.status == 401 and (body["error"], body["message"]) == ("unauthenticated", "signature")
