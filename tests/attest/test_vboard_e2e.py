"""End to end on the virtual board (MicroPython unix port, esp32 heap) against a verifier on real sockets:
the firmware's OTA client answers the challenge the check hands out (janua.attestnet after
otaclient.poll). A board on its signed release is affirming; a file of its slot changed on flash (not
through OTA) makes it contraindicated and quarantined; quarantined, it can still check, update to a
signed release, and its next attestation is affirming and releases it; while quarantined its binary
auth is NOT_ACTIVE and it gets no device token (the firmware's own calls). The exact evidence bytes
the board built, sent twice, are refused 409 stale_nonce, and so is evidence for a nonce the operator
replaced. A board that takes a periodic challenge at its check-in and never answers goes to warning
(trust 40) when its deadline passes. With a model reference registered from the board's janua package
(`janua attest ref add --modules-from`) it is affirming; one janua module changed on flash makes it
contraindicated."""

import asyncio
import json
import time
import urllib.error
import urllib.request

from tests.ota_verifier.test_otaclient import APP_OK, BOOT, POLL, app_files, run_mp
from tests.support import AdminTenant, live_server  # noqa: F401 (fixture)
from tools import ota as host
from tools import ota_release
from tools.api import API
from tools import cli
from tools.build import build_firmware
from verifier.appkeys import CORE, SEALER, STORAGE
from verifier.attest import core as attest
from verifier.attest.evidence import decode
from verifier.registry import core as registry

# what a quarantined board may still do: its firmware's binary auth (janua.app.run) and device token
QUARANTINED = """
import json
from janua.app import run
print(json.dumps({"run": run()}))
from janua.clock import Clock
from janua.store import Store
from janua.token import TokenStore
st = Store()
ts = TokenStore(st.load_config(), Clock(), st.load_state().get("last_sent", 0))
try:
    ts.obtain()
    print(json.dumps({"token": "obtained"}))
except Exception as e:
    print(json.dumps({"token": "%s: %s" % (type(e).__name__, e)}))
import os
print(json.dumps({"token_file": "token.json" in os.listdir()}))
"""

# the board builds its evidence (janua.attest.Attester) for the given nonces; the test sends the bytes
EVIDENCE = """
import json
from binascii import hexlify, unhexlify
from janua.attest import Attester
from janua.store import Store
a = Attester(Store().load_config())
for n in %r:
    print(json.dumps({"ev": hexlify(a.evidence(unhexlify(n), %d)).decode()}))
"""

# a check-in whose challenge the board takes and never answers (OTAClient.check alone)
CHECK_ONLY = """
import json
from janua.clock import Clock
from janua.otaclient import OTAClient
from janua.store import Store
st = Store()
c = OTAClient(st.load_config(), Clock(), st.load_state().get("last_sent", 0))
print(json.dumps({"update": c.check(), "attest": c.attest}))
"""


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
    # quarantined, the board "can then only update": no binary auth, no device token
    lines, text = await run_mp(flash, QUARANTINED)
    # (the token route answers 403 {"error": "unauthenticated", "message": "not_active"} with an
    # authenticated NOT_ACTIVE reply; the firmware reports the status)
    assert lines == [{"run": "janua: auth failed: not_active"}, {"token": "AuthError: token: http 403"},
                     {"token_file": False}], text
    rows = [(r["action"], r["transport"], r["result"], r["reason"]) for r in st.list_audit(tenant.id, hex_id, 3)]
    assert rows == [("binauth", "http", "NOT_ACTIVE", "quarantined")] * 2 + [
        ("DEVICE_ATTESTATION", "http", "contraindicated", None)], rows     # the token call, run()'s, the appraisal

    await release("3.0.0", 3)
    lines, text = await run_mp(flash, POLL)          # quarantined: may still check, and update
    assert {"poll": "installed", "line": "janua ota: installed 3.0.0 (trial): reset to run it; "
                                         "attested: contraindicated"} in lines, text
    lines, text = await run_mp(flash, BOOT)          # 3.0.0 runs; quarantined by attestation, it is
    assert {"app": "3.0.0"} in lines, text           # challenged at once, attests and is released
    assert {"poll": "none", "line": "janua ota: up to date; attested: affirming"} in lines, text
    assert state() == ("affirming", 70, False), text
    assert [n["event"] for n in st.list_notifications(tenant.id)][-1] == "device.released"


class Board:
    """A provisioned device of tenant acme on the virtual board: its flash (janua.json, ota.json with
    a release key), the firmware as shipped (.mpy) in fw/lib, an admin API."""

    def __init__(self, server, tmp):
        self.server, self.tmp = server, tmp
        self.st = st = server.app[STORAGE]
        self.tenant = AdminTenant(server.app, "acme", time.time)
        (self.hex, _), = self.tenant.provision([{}])
        self.id = bytes.fromhex(self.hex)
        registry.patch_tenant_policy(st, self.tenant.id, {"policy": {"device_rate": {"capacity": 100,
                                                                                      "refill_per_s": 10}}},
                                     time.time(), "test")
        server.app[CORE].forget_tenant(self.tenant.id)
        self.flash = tmp / "flash"
        self.flash.mkdir()
        self.lib = tmp / "fw" / "lib"
        build_firmware(tmp / "fw", "unix", main_file=tmp / "none")
        master = server.app[SEALER].unseal(st.get_device(self.id)["sealed_secret"], self.id, self.tenant.id).hex()
        (self.flash / "janua.json").write_text(json.dumps({
            "device_id": self.hex, "master_secret": master, "transport": "http",
            "server": {"host": "127.0.0.1", "http_port": server.http_port}}))
        (self.flash / "main.py").write_text("print('factory app')\n")
        _, pub, _ = host.keygen(tmp / "keys", "release")
        kid, raw = host.load_public(pub)
        (self.flash / "ota.json").write_text(json.dumps({"keys": {kid: raw.hex()}, "hw_version": 2}))
        self.api = API(server.url, token=self.tenant.token)

    async def call(self, method, path, body=None):
        return await asyncio.get_running_loop().run_in_executor(None, self.api.call, method, path, body)

    def state(self):
        dev = self.st.get_device(self.id)
        return dev["attestation_status"], dev["trust_level"], dev["quarantined"]

    async def evidence(self, *nonces):
        lines, text = await run_mp(self.flash, EVIDENCE % (list(nonces), int(time.time())))
        assert len(lines) == len(nonces), text
        return [bytes.fromhex(line["ev"]) for line in lines]

    async def post(self, ev):
        """POST evidence bytes as the board does: (status, JSON answer)."""
        req = urllib.request.Request(self.server.url + "/v1/attest/evidence", data=ev, method="POST",
                                     headers={"Content-Type": "application/octet-stream"})

        def send():
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())
        return await asyncio.get_running_loop().run_in_executor(None, send)


async def test_replayed_evidence_and_evidence_for_a_replaced_nonce_are_refused_stale_nonce(live_server, tmp_path):
    b = Board(live_server, tmp_path)
    n1 = (await b.call("POST", f"/v1/devices/{b.hex}/attest"))["nonce"]
    ev, = await b.evidence(n1)
    status, doc = await b.post(ev)
    assert (status, doc["status"]) == (200, "warning"), doc      # the factory app is no release
    assert await b.post(ev) == (409, {"error": "stale_nonce", "message": "not the device's outstanding "
                                      "challenge, expired or already used"})
    assert len(b.st.list_attest_results(b.id, 10)) == 1            # the replay stored nothing

    # the operator asks twice: the second nonce replaces the first; the board answers the first
    n2 = (await b.call("POST", f"/v1/devices/{b.hex}/attest"))["nonce"]
    n3 = (await b.call("POST", f"/v1/devices/{b.hex}/attest"))["nonce"]
    old, new = await b.evidence(n2, n3)
    assert (await b.post(old))[0] == 409
    assert (await b.post(old))[1]["error"] == "stale_nonce"
    assert (await b.post(new))[0] == 200                            # the outstanding one still answers
    assert len(b.st.list_attest_results(b.id, 10)) == 2


async def ref_from_package(b):
    """`janua attest ref add` for the board's model and MicroPython, modules from its janua package and
    the factory app from its flash: the reference."""
    ev = decode((await b.evidence("00" * 16))[0])
    srv = ["--server", b.server.url, "--token", b.tenant.token]
    argv = ["attest", "ref", "add", *srv, "--model", ev.board, "--micropython", ev.micropython,
            "--modules-from", str(b.lib / "janua"), "--app-from", str(b.flash), "-o", "json"]
    rc = await asyncio.get_running_loop().run_in_executor(None, cli.main, argv)
    assert rc == 0
    refs = (await b.call("GET", "/v1/attest/refs"))["refs"]
    assert len(refs) == 1 and len(refs[0]["modules"]) > 40 and [f["path"] for f in refs[0]["app_files"]] == ["main.py"]
    return refs[0]


async def test_a_board_on_its_model_reference_is_affirming_and_a_changed_janua_module_contraindicated(
        live_server, tmp_path):
    b = Board(live_server, tmp_path)
    await ref_from_package(b)
    await b.call("POST", f"/v1/devices/{b.hex}/attest")
    lines, text = await run_mp(b.flash, POLL)
    assert lines == [{"poll": "none", "line": "janua ota: up to date; attested: affirming"}], text
    assert b.state() == ("affirming", 70, False)

    # one janua module changed on flash (not one the check or the attestation loads)
    mod = b.lib / "janua" / "mqtt.mpy"
    mod.write_bytes(mod.read_bytes() + b"\0")
    await b.call("POST", f"/v1/devices/{b.hex}/attest")
    lines, text = await run_mp(b.flash, POLL)
    assert lines == [{"poll": "none", "line": "janua ota: up to date; attested: contraindicated"}], text
    assert b.state() == ("contraindicated", 0, True)
    r = await b.call("GET", f"/v1/devices/{b.hex}/attestation")
    assert r["attestation_status"] == "contraindicated", r


async def test_a_board_that_stops_answering_goes_to_warning_when_the_deadline_passes(live_server, tmp_path):
    b = Board(live_server, tmp_path)
    await ref_from_package(b)
    await b.call("PUT", "/v1/attest/policy", {"deadline_s": 10})   # the policy's smallest deadline
    lines, text = await run_mp(b.flash, POLL)                       # no result yet: a periodic challenge
    assert lines == [{"poll": "none", "line": "janua ota: up to date; attested: affirming"}], text
    assert b.state() == ("affirming", 70, False)
    await b.call("PUT", "/v1/attest/policy", {"interval_s": 1})    # the next check-in is due a challenge
    await asyncio.sleep(1.1)
    lines, text = await run_mp(b.flash, CHECK_ONLY)                # it takes the challenge, answers nothing
    (out,) = lines
    ch = b.st.get_challenge(b.id)
    assert out["update"] is None and out["attest"] == {"nonce": ch["nonce"].hex(), "expires_at": ch["expires_at"]}
    assert ch["reason"] == "periodic" and ch["expires_at"] - ch["issued_at"] == 10
    assert attest.sweep(b.st, ch["expires_at"] - 1) == 0           # not before its deadline
    assert b.state() == ("affirming", 70, False)
    assert attest.sweep(b.st, ch["expires_at"]) == 1                # the attest feature's deadline task
    assert b.state() == ("warning", 40, False)
    row = b.st.list_audit(b.tenant.id, b.hex, limit=1)[0]
    assert (row["result"], row["reason"]) == ("warning", "missed"), row
    assert row["detail"] == (f"trust level 40; no evidence for the periodic challenge issued at {ch['issued_at']} "
                             f"by its deadline {ch['expires_at']}"), row
    n = b.st.list_notifications(b.tenant.id)[-1]
    assert n["event"] == "attestation.missed", n
    assert {k: n["data"][k] for k in ("device_id", "reason", "expires_at", "trust_level")} == {
        "device_id": b.hex, "reason": "periodic", "expires_at": ch["expires_at"], "trust_level": 40}
