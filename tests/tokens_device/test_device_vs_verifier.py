"""The firmware's token and chain code (MicroPython unix port, esp32 heap, .mpy as shipped) against a
real verifier on real sockets (verifier.app.start_server, ports 0): obtain a device token with binary
auth, refresh it, call a bearer route, sync a chain, authenticate offline once (accepted) and replay
the same token (refused), report the use at the next sync; and the boot flow (app.run) doing the same."""

import asyncio
import json
import time

import aiohttp
import pytest

from tools.boards import COUNTING_FS, micropython_cmd
from tests.support import live_server  # noqa: F401 (fixture)
from tools.build import build_firmware
from verifier.registry import core as registry
from verifier.tokens import routes as token_http
from verifier.appkeys import CORE, SEALER, STORAGE

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not token_http.ROUTES, reason="verifier token routes not there yet")]

FLOW = """
import json
from binascii import unhexlify, hexlify
from janua.clock import Clock
from janua.store import PosixFS
from janua.token import TokenStore, call
from janua.chain import Chain, ChainError
from janua import AuthError
cfg = json.load(open("janua.json"))
url = "http://127.0.0.1:%d" % cfg["server"]["http_port"]
clock = Clock()
ts = TokenStore(cfg, clock)
print(json.dumps({"due_before": ts.due(clock.now())}))
ts.ensure(clock.now())                                  # none on flash: obtain with binary auth
first = ts.bearer()
print(json.dumps({"obtained": True, "due": ts.due(clock.now()), "exp_in": ts.exp() - clock.now(),
                  "refresh_in": ts.doc["refresh_at"] - clock.now(), "who": ts.whoami(), "len": len(first)}))
ts.refresh()
print(json.dumps({"refreshed": ts.bearer() != first, "who2": ts.whoami()["device_id"],
                  "reloaded": TokenStore(cfg, clock).bearer() == ts.bearer()}))
""" + COUNTING_FS + """fs = Counting()
ch = Chain(unhexlify(cfg["device_id"]), fs=fs)
r = ch.sync(ts, clock.now())
st = ch.status(clock.now())
print(json.dumps({"sync": r, "status": st, "header": ch.header()}))
fs.written = 0
ok = ch.present(url, clock.now())
print(json.dumps({"offline": ok, "flash_bytes": fs.written}))
# the same token again, straight on the wire (what a replaying attacker or a device that lost its
# used log would send): refused
index = ok["index"]
slot = [i for i in range(ch.header()[1]) if ch._fields(open("chain.bin", "rb"), i)[0] == index][0]
status, body = call("127.0.0.1", cfg["server"]["http_port"], "POST", "/v1/auth/device/offline",
                    {"token": hexlify(ch.slot(slot)).decode()})
print(json.dumps({"replay": [status, body]}))
try:
    ch.present(url, clock.now()); again = "presented"
except ChainError:
    again = "no unused token for now"
print(json.dumps({"again": again}))
r2 = ch.sync(ts, clock.now())
print(json.dumps({"sync2": r2, "used_left": sorted(ch.load_used())}))
"""


async def run_mp(flash, fw, script, n=[0]):
    n[0] += 1
    path = flash.parent / f"s{n[0]}.py"
    path.write_text(script)
    argv, env = micropython_cmd("esp32", path, path=[fw])
    p = await asyncio.create_subprocess_exec(*argv, env=env, cwd=flash, stdout=asyncio.subprocess.PIPE,
                                             stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(p.communicate(), 120)
    lines = {}
    for line in out.decode().splitlines():
        try:
            lines.update(json.loads(line))
        except (ValueError, TypeError):
            pass
    return lines, out.decode() + err.decode()


@pytest.fixture
async def server(live_server):
    return live_server


def board(server, tmp_path, name, **extra):
    st = server.app[STORAGE]
    if not hasattr(board, "tenant") or board.tenant[0] is not server:
        t = registry.create_tenant(st, "acme", time.time())
        registry.patch_tenant_policy(st, t["id"], {"policy": {
            "device_rate": {"capacity": 100, "refill_per_s": 10}}}, time.time(), "test")
        server.app[CORE].forget_tenant(t["id"])
        board.tenant = (server, t)
    tid = board.tenant[1]["id"]
    res = registry.provision_bulk(st, server.app[SEALER], tid, [{"serial_number": name}], time.time())
    r = res["results"][0]
    st.update_device(tid, bytes.fromhex(r["device_id"]), {"status": "active"})
    flash = tmp_path / name
    flash.mkdir()
    (flash / "janua.json").write_text(json.dumps(dict({
        "device_id": r["device_id"], "master_secret": r["master_secret"], "transport": "http",
        "server": {"host": "127.0.0.1", "http_port": server.http_port}}, **extra)))
    return flash, r["device_id"]


@pytest.fixture(scope="module")
def fw(tmp_path_factory):
    d = tmp_path_factory.mktemp("fw")
    build_firmware(d, "unix", main_file=d / "none")           # .mpy, as shipped
    return d / "lib"


async def test_token_refresh_chain_sync_and_offline_use_against_the_verifier(server, tmp_path, fw):
    flash, dev = board(server, tmp_path, "TOK-1")
    out, text = await run_mp(flash, fw, FLOW)
    assert out.get("due_before") is True, text
    assert out.get("obtained") and out["due"] is False, text
    # the device's clock and the verifier's are whole seconds read at different instants: exp can be 1 s ahead
    assert 3000 < out["exp_in"] <= 3601 and out["exp_in"] - out["refresh_in"] == 300
    assert out["who"]["device_id"] == dev and out["who"]["status"] == "active"
    assert out.get("refreshed") and out["who2"] == dev and out["reloaded"], text
    assert out["sync"]["added"] == 30, text
    assert out["status"][0] >= 1 and out["header"][1] == 30
    assert out["offline"]["ok"] is True and out["offline"]["device_id"] == dev, text
    assert out["flash_bytes"] == 2
    assert out["replay"][0] == 401 and out["replay"][1] == {"error": "unauthenticated", "message": "refused"}
    assert out["again"] == "no unused token for now"
    assert out["offline"]["index"] in out["sync2"]["used_ack"], text
    assert out["sync2"]["added"] == 0
    assert json.loads((flash / "token.json").read_text())["exp"] > time.time()


async def test_boot_flow_obtains_a_token_and_a_chain_when_configured(server, tmp_path, fw):
    flash, dev = board(server, tmp_path, "TOK-2", tokens={"chain": True})
    out, text = await run_mp(flash, fw, "import json\nfrom janua import app\nprint(json.dumps({'line': app.run()}))\n")
    line = out.get("line", "")
    assert line.startswith("janua: authenticated device=%s via http" % dev), text
    assert " token: exp=" in line and " chain: " in line and "(+30)" in line, line
    assert (flash / "chain.bin").stat().st_size == 16 + 30 * 107
    state = json.loads((flash / "janua_state.json").read_text())
    assert state["result"] == "ok" and state["last_sent"] > 0 and "drift_s" in state
    # the second boot: the token is not due, nothing is topped up
    out, text = await run_mp(flash, fw, "import json\nfrom janua import app\nprint(json.dumps({'line': app.run()}))\n")
    assert "(+0)" in out.get("line", ""), text


SUSPENDED = """
import json
from janua.clock import Clock
from janua.token import TokenStore
from janua import AuthError
cfg = json.load(open("janua.json"))
clock = Clock()
ts = TokenStore(cfg, clock)
res = {}
for name, fn in (("whoami", ts.whoami), ("refresh", ts.refresh), ("obtain", ts.obtain)):
    try:
        fn(); res[name] = "accepted"
    except AuthError as e:
        res[name] = "refused"
print(json.dumps(res))
"""


async def test_suspended_device_token_stops_working_at_once(server, tmp_path, fw):
    flash, dev = board(server, tmp_path, "TOK-3")
    out, text = await run_mp(flash, fw, FLOW.split("ts.refresh()")[0])     # obtain a token
    assert out.get("obtained"), text
    _, admin = registry.issue_token(server.app[STORAGE], board.tenant[1]["id"], time.time())
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {admin}"}) as s:
        r = await s.post(f"http://127.0.0.1:{server.http_port}/v1/devices/{dev}/lifecycle",
                         json={"action": "suspend", "reason": "test"})
        assert r.status == 200, await r.text()
    out, text = await run_mp(flash, fw, SUSPENDED)
    assert out == {"whoami": "refused", "refresh": "refused", "obtain": "refused"}, text


async def test_boot_flow_offline_presents_the_chain_token_to_the_edge_once(server, tmp_path, fw):
    # the verifier serves POST /v1/auth/device/offline like an edge does: it stands in for one here
    url = f"http://127.0.0.1:{server.http_port}"
    flash, dev = board(server, tmp_path, "TOK-4", tokens={"chain": True, "edge": url})
    boot = "import json\nfrom janua import app\nprint(json.dumps({'line': app.run()}))\n"
    out, text = await run_mp(flash, fw, boot)
    assert "(+30)" in out.get("line", ""), text
    offline = """
import json
from janua.store import Store
from janua.clock import Clock
from janua.tokenapp import run
s = Store()
print(json.dumps({"l1": run(s.load_config(), s, Clock(), False), "l2": run(s.load_config(), s, Clock(), False)}))
"""
    out, text = await run_mp(flash, fw, offline)
    assert out.get("l1", "").startswith(" offline: ok index=0 next_nbf="), text
    assert out["l2"].startswith(" tokens: ChainError: no unused chain token"), text
