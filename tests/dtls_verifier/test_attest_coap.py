"""Board attestation over CoAP/DTLS (docs/attestation.md 2.3): GET /attest hands out the challenge,
POST /attest appraises the evidence and answers 2.04 with the same JSON as HTTP; a replay is 4.09, a
wrong tag 4.01, and another device's evidence is refused on this device's session (4.03)."""

import asyncio
import json

from aiocoap import Code

from tests.dtls_verifier.peers import MbedTLSClient
from verifier import keys
from verifier.attest import evidence


def _board_evidence(dev, nonce, key=None, device_id=None):
    k = key or keys.derive_key(dev.master, b"attest")
    return evidence.encode(k, device_id or dev.id, nonce, 0, micropython="1.24.1", board="esp32",
                           app=(1, 0, "9.9.9"), files=[("main.py", 3, "ab" * 32)])


async def test_attest_over_coap(verifier, device):
    other = verifier.device()

    def session():
        c = MbedTLSClient(verifier.port, device.identity, device.psk).handshake()
        try:
            got = c.request(Code.GET, "attest")
            nonce = bytes.fromhex(json.loads(got.payload)["nonce"])
            again = c.request(Code.GET, "attest", mid=2)                 # outstanding: the same one
            bad = c.request(Code.POST, "attest", payload=_board_evidence(device, nonce, key=b"k" * 32), mid=3)
            foreign = c.request(Code.POST, "attest", payload=_board_evidence(other, nonce), mid=4)
            ok = c.request(Code.POST, "attest", payload=_board_evidence(device, nonce), mid=5)
            replay = c.request(Code.POST, "attest", payload=_board_evidence(device, nonce), mid=6)
            return got, again, bad, foreign, ok, replay
        finally:
            c.close()

    got, again, bad, foreign, ok, replay = await asyncio.wait_for(asyncio.to_thread(session), 60)
    assert got.code == Code.CONTENT and set(json.loads(got.payload)) == {"nonce", "expires_at"}
    assert json.loads(again.payload) == json.loads(got.payload)
    assert (bad.code, bad.payload) == (Code.UNAUTHORIZED, b"tag")
    assert foreign.code == Code.FORBIDDEN
    assert ok.code == Code.CHANGED
    answer = json.loads(ok.payload)
    assert (answer["status"], answer["trust_level"], answer["quarantined"]) == ("warning", 40, False)
    assert answer["ear"].count(".") == 2
    assert (replay.code, replay.payload) == (Code.CONFLICT, b"stale_nonce")
    rows = [(a["action"], a["transport"], a["result"]) for a in verifier.audit(device)]
    assert ("DEVICE_ATTESTATION", "coap", "warning") in rows
