"""firmware/janua/otaclient.py on the MicroPython unix port (esp32 heap; see run_mp) against a verifier on real
sockets: publish v2 -> the device checks, downloads, installs, boots v2 in trial, confirms and the
verifier sees "confirmed"; a v3 that fails at boot -> the device rolls back to v2 by itself and the
verifier sees "rolled_back" with the reason. Also publish through `janua ota publish`'s code path."""

import asyncio
import json
import time

import pytest

from tests.ota_verifier.conftest import Tenant, make_bundle
from tests.support import live_server, run_mp_json  # noqa: F401 (fixture)
from tools import ota as host
from tools import ota_release
from tools.api import API
from tools.build import build_firmware
from verifier.registry import core as registry
from verifier.appkeys import CORE, STORAGE

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
class Slots(AppSlots):
    def note_failure(self, why):
        print(json.dumps({"failure": why}))
        AppSlots.note_failure(self, why)
def reset():
    print(json.dumps({"reset": True}))
d = otaboot.main(Slots(), reset=reset)
print(json.dumps({"slot": d}))
"""

APP_OK = ("from janua.ota import confirm\nconfirm()\nfrom janua import otaclient\n"
          "r, line = otaclient.poll()\nprint(json.dumps({'poll': r, 'line': line}))\n")
APP_BAD = "raise RuntimeError('v3 cannot start')\n"


async def run_mp(flash, script, n=[0]):
    n[0] += 1
    path = flash.parent / f"s{n[0]}.py"
    path.write_text(script)
    # The esp32 profile (110 KiB heap, no PSRAM): the whole flow (a running app, HTTP, JSON, then
    # the pure-Python Ed25519 check) must fit it. It used to fail with MemoryError from heap
    # fragmentation now and then (issue #4); a failure here is a device bug, not a reason to test
    # on a bigger heap.
    return await run_mp_json(path, flash, flash.parent / "fw" / "lib")


def app_files(version, body):
    return {"main.py": f"import json\nprint(json.dumps({{'app': '{version}'}}))\n" + body,
            "appver.py": f"VERSION = '{version}'\n"}


@pytest.fixture
async def server(live_server):
    return live_server


async def test_device_updates_confirms_then_rolls_back(server, tmp_path, signing):
    tenant = Tenant(server.app, "acme", time.time)
    dev = tenant.devices(1)[0]
    # one device makes many authenticated calls within seconds here: lift the per-device rate limit
    registry.patch_tenant_policy(server.app[STORAGE], tenant.id, {"policy": {
        "device_rate": {"capacity": 100, "refill_per_s": 10}}}, time.time(), "test")
    server.app[CORE].forget_tenant(tenant.id)
    st = server.app[STORAGE]
    # OTA alone here: no attestation challenge in the check's answer (tests/attest covers the two together)
    st.put_attest_policy(tenant.id, "", 0, None, None)
    # the device's flash: credentials, trusted release key, no update yet
    flash = tmp_path / "flash"
    flash.mkdir()
    build_firmware(tmp_path / "fw", "unix", main_file=tmp_path / "none")   # .mpy, as shipped
    from verifier.appkeys import SEALER
    master = server.app[SEALER].unseal(st.get_device(dev.id)["sealed_secret"], dev.id, tenant.id).hex()
    (flash / "janua.json").write_text(json.dumps({
        "device_id": dev.hex, "master_secret": master, "transport": "http",
        "server": {"host": "127.0.0.1", "http_port": server.http_port}}))
    kid, raw = host.load_public(signing["release"]["pub"])
    (flash / "ota.json").write_text(json.dumps({"keys": {kid: raw.hex()}, "hw_version": 2, "trial_boots": 2}))

    api = API(server.url, token=tenant.token)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, ota_release.trust_key, api, signing["release"]["pub"], "release")
    b2 = make_bundle(tmp_path, signing, "2.0.0", 2, files=app_files("2.0.0", APP_OK), boards=["esp32", "unix"])
    rel2 = await loop.run_in_executor(None, ota_release.publish, api, b2)          # the CLI's upload path
    ro2 = await loop.run_in_executor(None, ota_release.rollout, api, rel2["id"], True)
    assert ro2["state"] == "active"
    # phase 1 is 1 %: widen it so this one device is in the cohort
    st.update_rollout(ro2["id"], {"phase": 3})

    lines, text = await run_mp(flash, POLL)
    assert {"poll": "installed", "line": "janua ota: installed 2.0.0 (trial): reset to run it"} in lines, text
    assert json.loads((flash / "ota_ptr.json").read_text())["state"] == "trial"
    assert st.get_ota_report(rel2["id"], dev.id)["state"] == "installed"

    lines, text = await run_mp(flash, BOOT)                       # reboot into v2: it confirms and reports
    assert {"app": "2.0.0"} in lines and {"poll": "none", "line": "janua ota: up to date"} in lines, text
    assert st.get_ota_report(rel2["id"], dev.id)["state"] == "confirmed"

    b3 = make_bundle(tmp_path, signing, "3.0.0", 3, files=app_files("3.0.0", APP_BAD), boards=["esp32", "unix"],
                     trial_boots=2)
    rel3 = await loop.run_in_executor(None, ota_release.publish, api, b3)
    ro3 = await loop.run_in_executor(None, ota_release.rollout, api, rel3["id"], True)
    st.update_rollout(ro3["id"], {"phase": 3})
    lines, text = await run_mp(flash, BOOT)                       # v2 runs, polls, installs v3
    assert {"poll": "installed", "line": "janua ota: installed 3.0.0 (trial): reset to run it"} in lines, text
    for _ in range(2):                                            # v3 fails at each trial boot
        lines, text = await run_mp(flash, BOOT)
        assert {"reset": True} in lines and {"app": "3.0.0"} in lines, text
    lines, text = await run_mp(flash, BOOT)                       # out of trial boots: back to v2
    assert {"app": "2.0.0"} in lines, text
    rep = st.get_ota_report(rel3["id"], dev.id)
    assert rep["state"] == "rolled_back" and "not confirmed after 2 boots" in rep["reason"], rep
    assert "v3 cannot start" in rep["reason"]
    s = await loop.run_in_executor(None, ota_release.status, api, ro3["id"])
    assert s["counts"]["rolled_back"] == 1
    assert "rolled_back 1" in ota_release.format_status(s)
    lines, text = await run_mp(flash, POLL)                       # v3 is not offered again
    assert {"poll": "none", "line": "janua ota: up to date"} in lines, text
