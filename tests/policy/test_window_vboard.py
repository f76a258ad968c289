"""A maintenance window defers an update on the board until the window opens (issue #17, docs/policies.md 3 "OTA"),
end to end with an injected clock: the verifier is built by create_app in this test's event loop on a real HTTP
port, with a FakeClock as its Config.clock; the board is the shipped firmware/main.py (.mpy, as built by
tools/build.py) on the MicroPython unix port with the esp32 heap, booted as a subprocess. The board has no clock of
its own: it takes the verifier's time from the authenticated replies (TIME_SYNC), so moving the verifier's clock
moves the board's; but the board never sends a timestamp below one it sent before (binauth.py: max(now,
last_sent + 1)), and its first one is the host's real time, so the verifier's clock starts ahead of any real time
this test runs at. A release and a 100 % rollout are offered; the device's policy sets a window.

START is 2032-01-01 00:00 UTC, 01:00 in Berlin (CET, UTC+1). The window is 02:00-03:00 Berlin, so it opens at
01:00 UTC: 1956531600."""

import asyncio
import json

import aiohttp
import pytest

from tests.ota_verifier.conftest import form, make_bundle
from tests.support import KEK, AdminTenant, FakeClock
from tools import ota as host
from tools.boards import micropython_cmd
from tools.build import build_firmware
from verifier.app import start_server
from verifier.appkeys import CORE, STORAGE
from verifier.config import Config
from verifier.registry import core as registry

pytestmark = pytest.mark.e2e

# the application of docs/ota.md 7.5: authenticate, then confirm once that worked
APP = ("import json\nprint(json.dumps({'app': '%s'}))\n"
       "from janua.app import run\nline = run()\nprint(line)\n"
       "if line.startswith('janua: authenticated'):\n"
       "    from janua.ota import confirm\n    confirm()\n")
START = 1_956_528_000
WINDOW = {"start": "02:00", "end": "03:00", "tz": "Europe/Berlin"}


@pytest.fixture(scope="module")
def signing(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    k, p, kid = host.keygen(d, "release")
    return {"release": {"key": k, "pub": p, "kid": kid, "pub_hex": host.load_public(p)[1].hex()}}


async def boot(fw, flash):
    """One boot of the shipped main.py: (exit code, console lines, stderr). A subprocess, so the verifier in this
    event loop answers it."""
    argv, env = micropython_cmd("esp32", fw / "main.py", path=[fw / "lib"])
    p = await asyncio.create_subprocess_exec(*argv, env=env, cwd=flash, stdout=asyncio.subprocess.PIPE,
                                             stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(p.communicate(), 120)
    return p.returncode, out.decode().splitlines(), err.decode()


async def call(s, method, url, headers, status, **kw):
    async with s.request(method, url, headers=headers, **kw) as r:
        body = await r.json()
        assert r.status == status, body
        return body


async def test_a_maintenance_window_defers_the_update_until_it_opens(tmp_path, signing):
    clock = FakeClock(START)
    cfg = Config(db_path=str(tmp_path / "janua.db"), kek=KEK, clock=clock, http_port=0, udp_port=None,
                 dtls_port=None)
    h = await start_server(cfg)
    try:
        st = h.app[STORAGE]
        tenant = AdminTenant(h.app, "acme", clock)
        # the clock stands still during a boot: a bucket that does not refill must hold a boot's calls
        registry.patch_tenant_policy(st, tenant.id, {"policy": {"device_rate": {"capacity": 100, "refill_per_s": 10}}},
                                     clock(), "test")
        st.put_attest_policy(tenant.id, "", 0, None, None)            # OTA alone: no attestation challenge
        h.app[CORE].forget_tenant(tenant.id)
        (dev_hex, master), = tenant.provision([{}])
        flash = tmp_path / "flash"
        flash.mkdir()
        (flash / "janua.json").write_text(json.dumps({
            "device_id": dev_hex, "master_secret": master, "transport": "http",
            "server": {"host": "127.0.0.1", "http_port": h.http_port}, "ota": {"check_s": 3600}}))
        kid, raw = host.load_public(signing["release"]["pub"])
        (flash / "ota.json").write_text(json.dumps({"keys": {kid: raw.hex()}, "hw_version": 2}))
        fw = tmp_path / "fw"
        build_firmware(fw, "unix")                                     # main.py and .mpy, as shipped
        b = make_bundle(tmp_path / "rel", signing, "2.0.0", 2, boards=["esp32", "unix"],
                        files={"main.py": APP % "2.0.0"})

        url, hdr = h.url, tenant.headers
        async with aiohttp.ClientSession() as s:
            await call(s, "POST", url + "/v1/release-keys", hdr, 201, json={"pub": signing["release"]["pub_hex"]})
            rel = await call(s, "POST", url + "/v1/releases", hdr, 201, data=form(b))
            ro = await call(s, "POST", url + f"/v1/releases/{rel['id']}/rollout", hdr, 201,
                            json={"start": True, "phases": [{"percent": 100, "hours": 0}]})
            await call(s, "PUT", url + f"/v1/policies/device/{dev_hex}", hdr, 201,
                       json={"update": {"mode": "window", "window": WINDOW}})

            # 01:00 Berlin: outside the window. The board authenticates, checks, is told when the window opens
            rc, lines, err = await boot(fw, flash)
            assert rc == 0, (lines, err)
            assert lines[0].startswith(f"janua: authenticated device={dev_hex} via http session="), (lines, err)
            assert lines[1:] == ["janua ota: deferred until 1956531600 (policy: outside the maintenance window)"], \
                (lines, err)
            assert not (flash / "ota_ptr.json").exists()              # nothing installed, no slot switched
            got = await call(s, "GET", url + f"/v1/rollouts/{ro['id']}", hdr, 200)
            assert {k: n for k, n in got["counts"].items() if n} == {}, got

            # one second before it opens: still deferred (a cold boot checks whatever the interval)
            clock.advance(3599)
            rc, lines, err = await boot(fw, flash)
            assert lines[1:] == ["janua ota: deferred until 1956531600 (policy: outside the maintenance window)"], \
                (lines, err)

            # the window opens: the same board installs the release and resets into it
            clock.advance(1 + 60)
            rc, lines, err = await boot(fw, flash)
            assert rc == 1, (lines, err)                               # janua_hal.reset() on the unix port
            assert lines[1:] == ["janua ota: installed 2.0.0 (trial): reset to run it"], (lines, err)

            clock.advance(60)                                          # v2 in trial confirms; the check reports it
            rc, lines, err = await boot(fw, flash)
            assert rc == 0, (lines, err)
            assert lines[0] == '{"app": "2.0.0"}', (lines, err)
            assert lines[2:] == ["janua ota: up to date"], (lines, err)
            got = await call(s, "GET", url + f"/v1/rollouts/{ro['id']}", hdr, 200)
            assert {k: n for k, n in got["counts"].items() if n} == {"confirmed": 1}, got
    finally:
        await h.close()
