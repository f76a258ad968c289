"""A device that authenticated only over DTLS (a PSK handshake and CoAP POST /auth, which leave no binary-auth
replay state) is never deleted by DELETE /v1/devices/{id}: the way back from a mistaken provisioning is
for devices that never authenticated."""

import asyncio

import aiohttp
from aiocoap import Code

from tests.dtls_verifier.test_psk_lifecycle import Admin, _post_auth


async def test_device_that_authenticated_over_dtls_only_is_never_deleted(verifier):
    admin = Admin(verifier, verifier.tenant)
    device = verifier.device(status="provisioning")
    assert (await asyncio.to_thread(_post_auth, verifier.port, device.identity, device.psk)).code == Code.CHANGED
    async with aiohttp.ClientSession(headers=admin.headers) as s:
        async with s.delete(f"{admin.url}/v1/devices/{device.hex}") as r:
            assert r.status == 409, await r.text()
            assert "has authenticated" in (await r.json())["message"]
    assert verifier.storage.get_device(device.id)["status"] == "active"


async def test_dtls_only_device_stays_undeletable_after_its_audit_rows_expire(verifier):
    """Audit rows are pruned by retention (docs/api.md "Audit trail"): the proof that a device
    authenticated must not live only there, or a DTLS-only device becomes deletable again."""
    admin = Admin(verifier, verifier.tenant)
    device = verifier.device(status="provisioning")
    assert (await asyncio.to_thread(_post_auth, verifier.port, device.identity, device.psk)).code == Code.CHANGED
    with verifier.storage.transaction():
        verifier.storage._db.execute("DELETE FROM audit")          # what retention does, at its extreme
    async with aiohttp.ClientSession(headers=admin.headers) as s:
        async with s.delete(f"{admin.url}/v1/devices/{device.hex}") as r:
            assert r.status == 409, await r.text()
            assert "has authenticated" in (await r.json())["message"]
