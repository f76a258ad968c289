"""End to end on the virtual board (MicroPython unix port, esp32 heap) against a verifier on real sockets:
the firmware's OTA client answers the challenge the check hands out (janua.attestnet after
otaclient.poll). A board on its signed release is affirming; a file of its slot changed on flash (not
through OTA) makes it contraindicated and quarantined; quarantined, it can still check, update to a
signed release, and its next attestation is affirming and releases it."""

import asyncio
import json
import time

from tests.ota_verifier.test_otaclient import APP_OK, BOOT, POLL, app_files, run_mp
from tests.support import AdminTenant, live_server  # noqa: F401 (fixture)
from tools import ota as host
from tools import ota_release
from tools.api import API
from tools.build import build_firmware
from verifier.appkeys import CORE, SEALER, STORAGE
from verifier.registry import core as registry


def bundle(tmp, key, version, counter):
    src = tmp / f"src-{version}"
    for rel, text in app_files(version, APP_OK).items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    out = tmp / f"bundle-{version}"
    host.build_bundle(src, out, version, counter, boards=["esp32", "unix"], compile_py=False)
    host.sign_bundle(out, key)
    return out


async def test_board_attests_is_quarantined_after_tampering_and_updates_its_way_out(live_server, tmp_path):
    server = live_server
    st = server.app[STORAGE]
    tenant = AdminTenant(server.app, "acme", time.time)
    (hex_id, _), = tenant.provision([{}])
    did = bytes.fromhex(hex_id)
    registry.patch_tenant_policy(st, tenant.id, {"policy": {"device_rate": {"capacity": 100, "refill_per_s": 10}}},
                                 time.time(), "test")
    server.app[CORE].forget_tenant(tenant.id)
    key, pub, _ = host.keygen(tmp_path / "keys", "release")
    flash = tmp_path / "flash"
    flash.mkdir()
    build_firmware(tmp_path / "fw", "unix", main_file=tmp_path / "none")
    master = server.app[SEALER].unseal(st.get_device(did)["sealed_secret"], did, tenant.id).hex()
    (flash / "janua.json").write_text(json.dumps({
        "device_id": hex_id, "master_secret": master, "transport": "http",
        "server": {"host": "127.0.0.1", "http_port": server.http_port}}))
    kid, raw = host.load_public(pub)
    (flash / "ota.json").write_text(json.dumps({"keys": {kid: raw.hex()}, "hw_version": 2, "trial_boots": 2}))
    api = API(server.url, token=tenant.token)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, ota_release.trust_key, api, pub, "release")

    async def release(version, counter):
        rel = await loop.run_in_executor(None, ota_release.publish, api, bundle(tmp_path, key, version, counter))
        await loop.run_in_executor(None, lambda: api.call("POST", f"/v1/releases/{rel['id']}/rollout",
                                                          {"start": True, "phases": [{"percent": 100}]}))

    def state():
        dev = st.get_device(did)
        return dev["attestation_status"], dev["trust_level"], dev["quarantined"]

    await release("2.0.0", 2)
    lines, text = await run_mp(flash, POLL)          # factory app, no release of it: warning; installs 2.0.0
    assert {"poll": "installed", "line": "janua ota: installed 2.0.0 (trial): reset to run it; attested: warning"} \
        in lines, text
    assert state() == ("warning", 40, False)
    request = lambda: api.call("POST", f"/v1/devices/{hex_id}/attest")              # noqa: E731
    await loop.run_in_executor(None, request)        # the operator asks for an attestation now
    lines, text = await run_mp(flash, BOOT)          # 2.0.0 confirms and polls: its slot is the release
    assert {"app": "2.0.0"} in lines and {"poll": "none", "line": "janua ota: up to date; attested: affirming"} \
        in lines, text
    assert state() == ("affirming", 70, False), text

    # a file of the active slot edited on flash, not through OTA
    slot = json.loads((flash / "ota_ptr.json").read_text())["active"]
    (flash / f"app_{slot}" / "appver.py").write_text("VERSION = '2.0.0'  # patched\n")
    await loop.run_in_executor(None, request)
    lines, text = await run_mp(flash, POLL)
    assert {"poll": "none", "line": "janua ota: up to date; attested: contraindicated"} in lines, text
    assert state() == ("contraindicated", 0, True)
    assert [n["event"] for n in st.list_notifications(tenant.id)][-2:] == ["attestation.failed", "device.quarantined"]

    await release("3.0.0", 3)
    lines, text = await run_mp(flash, POLL)          # quarantined: may still check, and update
    assert {"poll": "installed", "line": "janua ota: installed 3.0.0 (trial): reset to run it; "
                                         "attested: contraindicated"} in lines, text
    lines, text = await run_mp(flash, BOOT)          # 3.0.0 runs; quarantined by attestation, it is
    assert {"app": "3.0.0"} in lines, text           # challenged at once, attests and is released
    assert {"poll": "none", "line": "janua ota: up to date; attested: affirming"} in lines, text
    assert state() == ("affirming", 70, False), text
    assert [n["event"] for n in st.list_notifications(tenant.id)][-1] == "device.released"
