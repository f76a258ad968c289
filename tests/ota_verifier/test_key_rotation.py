"""Release-key rotation end to end (docs/ota.md 1.1, 7.1): the tenant trusts a new key and retires the
old one; a release signed with the new key is published, served as uploaded, and installed and
confirmed by firmware/janua/otaclient.py on the MicroPython unix port (esp32 heap) of a board whose
ota.json trusts both keys; the retired key no longer publishes; a board that trusts only the old key
refuses the new release. A verifier on real sockets, real time (the device sets its clock from it)."""

import json
import time

import aiohttp
import pytest

from tests.ota_verifier.conftest import Tenant, form, make_bundle
from tests.support import live_server, run_mp_json  # noqa: F401 (fixture)
from tools import ota as host
from tools.build import build_firmware
from verifier.registry import core as registry
from verifier.appkeys import CORE, SEALER, STORAGE

POLL = """
import json
from janua import otaclient
r, line = otaclient.poll()
print(json.dumps({"poll": r, "line": line}))
"""

BOOT = """
import json
from janua import otaboot
from janua.ota import AppSlots
d = otaboot.main(AppSlots(), reset=lambda: print(json.dumps({"reset": True})))
print(json.dumps({"slot": d}))
"""

APP = ("import json\nprint(json.dumps({'app': '%s'}))\n"
       "from janua.ota import confirm\nconfirm()\nprint(json.dumps({'confirmed': True}))\n")


async def run_mp(fw, flash, script):
    path = flash.parent / (flash.name + "-script.py")
    path.write_text(script)
    return await run_mp_json(path, flash, fw / "lib")


@pytest.fixture
async def server(live_server):
    return live_server


async def api(session, method, url, tenant, status, **kw):
    async with session.request(method, url, headers=tenant.headers, **kw) as r:
        body = await r.json() if r.content_type == "application/json" else await r.read()
        assert r.status == status, body
        return body


def board(server, tenant, dev, tmp_path, name, trusted):
    """A board's flash: credentials and an ota.json trusting the public keys `trusted`."""
    flash = tmp_path / name
    flash.mkdir()
    st = server.app[STORAGE]
    master = server.app[SEALER].unseal(st.get_device(dev.id)["sealed_secret"], dev.id, tenant.id).hex()
    (flash / "janua.json").write_text(json.dumps({
        "device_id": dev.hex, "master_secret": master, "transport": "http",
        "server": {"host": "127.0.0.1", "http_port": server.http_port}}))
    keys = dict(host.load_public(p) for p in trusted)
    (flash / "ota.json").write_text(json.dumps({"keys": {k: v.hex() for k, v in keys.items()},
                                                "hw_version": 2, "trial_boots": 2}))
    return flash


async def test_release_signed_with_the_rotated_key_installs_and_the_retired_key_no_longer_publishes(
        server, tmp_path, signing):
    tenant = Tenant(server.app, "acme", time.time)
    both, old_only = tenant.devices(2)
    registry.patch_tenant_policy(server.app[STORAGE], tenant.id, {"policy": {
        "device_rate": {"capacity": 100, "refill_per_s": 10}}}, time.time(), "test")
    server.app[CORE].forget_tenant(tenant.id)
    server.app[STORAGE].put_attest_policy(tenant.id, "", 0, None, None)    # OTA alone: no attestation
    fw = tmp_path / "fw"
    build_firmware(fw, "unix", main_file=tmp_path / "none")
    old, new = signing["release"], signing["rotated"]
    flash = board(server, tenant, both, tmp_path, "flash-both", [old["pub"], new["pub"]])
    flash_old = board(server, tenant, old_only, tmp_path, "flash-old", [old["pub"]])

    url = server.url
    async with aiohttp.ClientSession() as s:
        # the rotation: trust the new key, retire the old one
        for k in (old, new):
            await api(s, "POST", url + "/v1/release-keys", tenant, 201, json={"pub": k["pub_hex"]})
        out = await api(s, "POST", url + f"/v1/release-keys/{old['kid']}/retire", tenant, 200)
        assert out["active"] is False

        # a new upload signed with the retired key is refused (docs/ota.md 7.1) and stores nothing
        stale = make_bundle(tmp_path, signing, "2.0.0", 2, key="release", files={"main.py": APP % "old"},
                            boards=["esp32", "unix"])
        out = await api(s, "POST", url + "/v1/releases", tenant, 400, data=form(stale))
        assert out["error"] == "release_rejected" and "retired" in out["message"]
        assert (await api(s, "GET", url + "/v1/releases", tenant, 200))["releases"] == []

        # signed with the rotated key: published under that kid, served byte for byte as uploaded
        b = make_bundle(tmp_path, signing, "2.0.0", 2, key="rotated", files={"main.py": APP % "2.0.0"},
                        boards=["esp32", "unix"])
        rel = await api(s, "POST", url + "/v1/releases", tenant, 201, data=form(b))
        assert rel["kid"] == new["kid"] and rel["version"] == "2.0.0"
        sig = json.loads((b / "manifest.sig").read_bytes())
        assert sig["kid"] == new["kid"]
        ro = await api(s, "POST", url + f"/v1/releases/{rel['id']}/rollout", tenant, 201, json={"start": True})
    server.app[STORAGE].update_rollout(ro["id"], {"phase": 3})          # 100 %: both boards are in

    lines, text = await run_mp(fw, flash, POLL)
    assert {"poll": "installed", "line": "janua ota: installed 2.0.0 (trial): reset to run it"} in lines, text
    lines, text = await run_mp(fw, flash, BOOT)
    assert {"app": "2.0.0"} in lines and {"confirmed": True} in lines, text
    st = server.app[STORAGE]
    lines, text = await run_mp(fw, flash, POLL)                          # sends the outcome
    assert st.get_ota_report(rel["id"], both.id)["state"] == "confirmed", text

    # a board that trusts only the old key checks the signature itself and refuses
    lines, text = await run_mp(fw, flash_old, POLL)
    (poll,) = [x for x in lines if "poll" in x]
    assert poll["poll"] == "failed" and f"unknown key id '{new['kid']}'" in poll["line"], text
    assert not (flash_old / "ota_ptr.json").exists() or \
        json.loads((flash_old / "ota_ptr.json").read_text()).get("state") != "trial"
