"""docs/protocol.md section 1: the HKDF input is the 32 raw bytes of the API's hex `master_secret`, not its
64 characters of text. The worked example of the document is checked here, and a device provisioned through
POST /v1/devices authenticates with keys derived from the decoded bytes only."""

import hmac

from verifier import keys
from verifier.binauth.core import OK, SIGNATURE, decode_reply, encode_request, unauthenticated_reply

MASTER_HEX = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"   # docs/vectors/binauth.json


def test_worked_example_of_protocol_section_1():
    m = bytes.fromhex(MASTER_HEX)
    prk = hmac.digest(b"janua/v1", m, "sha256")
    assert prk.hex() == "b2dc2cfbe02abde5c279aff08eb44417e7a8bdb70664a5493e85bc617d050d7a"
    assert keys.derive_key(m, keys.LABEL_BINAUTH).hex() == \
        "34be8ccd487d56ae3d84b5a2333cdd3dd99524e8314b80cdcf85afc40d3fcd38"
    assert hmac.digest(prk, b"binauth\x01", "sha256") == keys.derive_key(m, keys.LABEL_BINAUTH)
    assert keys.derive_key(MASTER_HEX.encode(), keys.LABEL_BINAUTH).hex().startswith("8d6f3692")   # the mistake


async def test_api_master_secret_is_hex_of_the_hkdf_input(client, tenant_a, clock):
    r = await client.post("/v1/devices", json={"serial_number": "SN-HKDF"}, headers=tenant_a.headers)
    assert r.status == 201
    doc = await r.json()
    did, text = bytes.fromhex(doc["device_id"]), doc["master_secret"]
    assert len(text) == 64 and len(bytes.fromhex(text)) == 32
    ts = int(clock())
    for ikm, status in ((text.encode(), SIGNATURE), (bytes.fromhex(text), OK)):
        key = keys.derive_key(ikm, keys.LABEL_BINAUTH)
        req = encode_request(key, did, ts)
        r = await client.post("/v1/binauth", data=req, headers={"Content-Type": "application/octet-stream"})
        reply = await r.read()
        if status == OK:
            assert decode_reply(key, req, reply)["status"] == OK
        else:
            assert reply == unauthenticated_reply(SIGNATURE)
