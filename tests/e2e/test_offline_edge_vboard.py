"""End to end for offline authentication (issue #5): a cloud verifier and an edge verifier (`janua serve`
and `janua serve --edge`, subprocesses), a virtual esp32 board flashed and provisioned with the real CLI.

The board boots online: it authenticates to the cloud, obtains a device token and a chain of offline
tokens. The cloud stops; the board boots again, cannot reach the cloud and authenticates to the edge with
the chain token for now. That token replayed is refused by the edge, also after the edge restarts. The
cloud comes back on the same ports: the edge delivers its used-token report, so the cloud refuses the
token too, and the board's next online boot reports it and keeps a topped-up chain."""

import json
import os
import time
import urllib.error
import urllib.request

import pytest

from tests.mosquitto import free_ports
from tools.boards import vboard_wifi_args
from tools.demo import Verifier, _janua, reset_and_read

pytestmark = pytest.mark.e2e

TOKEN_LEN = 107
HEADER_LEN = 16


def post(url, doc):
    req = urllib.request.Request(url, json.dumps(doc).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def wait_for(what, check, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = check()
        if out:
            return out
        time.sleep(0.25)
    raise AssertionError("timed out waiting for " + what)


def chain_slot(flash, index):
    """The stored chain token with this index, read from the board's flash (chain.bin: a 16-byte
    header, then 107-byte slots; a token's index is bytes 13..14 of the token)."""
    data = (flash / "chain.bin").read_bytes()
    for off in range(HEADER_LEN, len(data) - TOKEN_LEN + 1, TOKEN_LEN):
        tok = data[off:off + TOKEN_LEN]
        if int.from_bytes(tok[13:15], "big") == index:
            return tok
    raise AssertionError(f"no token {index} on the board")


def test_board_authenticates_to_the_edge_while_the_cloud_is_down(tmp_path):
    from tools.vboard import VirtualBoard
    http_port, udp_port = free_ports(2)     # fixed, so that the cloud comes back on the same ones
    cloud = Verifier(tmp_path, http_port=http_port, udp_port=udp_port)
    edge = None

    def start_edge():
        return Verifier(tmp_path, db_name="edge.db", extra=(
            "--edge", "--upstream", cloud_url, "--upstream-token-file", str(edge_token), "--sync-interval", "1"))

    cloud_url, token_file = cloud.url, cloud.token_file
    # the edge holds a token of role edge (docs/tokens.md "Edge verifier"); the admin token provisions
    edge_token = tmp_path / "edge.token"
    fd = os.open(edge_token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(_janua("tenant", "token", "default", "--db", str(cloud.db), "--role", "edge", "--label", "edge").stdout)
    try:
        edge = start_edge()
        with VirtualBoard("esp32", tmp_path / "flash") as vb:
            flash = vb.root                 # the board's LittleFS
            _janua("flash", "--port", vb.port, "--board", "esp32")
            out = _janua("provision", "--serial", "EDGE-1", "--port", vb.port, "--server", cloud.url,
                         "--token-file", str(token_file), "--udp-port", str(udp_port), "--transport", "udp",
                         "--edge", edge.url, *vboard_wifi_args("esp32")).stdout
            device_id = out.split("provisioned device ")[1].split()[0]

            # 1. Online boot: binary auth to the cloud, a device token and a chain of offline tokens.
            line = reset_and_read(vb.port, timeout=60)
            assert line.startswith("janua: authenticated device=" + device_id), line
            assert "token: exp=" in line and "chain: 30 unused" in line, line
            # The edge has synced (keys, revocations, its tenant); it has never seen this device.
            wait_for("the edge to sync", lambda: get(edge.url + "/v1/edge/status")["serving"])

            # 2. The cloud goes away; the board boots and authenticates to the edge offline.
            cloud.stop()
            line = reset_and_read(vb.port, timeout=60)
            assert "offline: ok index=" in line, line
            index = int(line.split("offline: ok index=")[1].split()[0])
            token = chain_slot(flash, index).hex()

            # 3. The same token again is refused, also by a restarted edge.
            assert post(edge.url + "/v1/auth/device/offline", {"token": token})[0] == 401
            edge.stop()
            edge = start_edge()
            assert post(edge.url + "/v1/auth/device/offline", {"token": token})[0] == 401
            # ...and the board, whose used log is on flash, does not present it twice.
            used = (flash / "chain.used").read_bytes()
            assert index.to_bytes(2, "big") in [used[i:i + 2] for i in range(0, len(used), 2)]

            # 4. The cloud returns on the same ports: the edge delivers its report, so the cloud
            # refuses the token the edge accepted; the board's online boot syncs and keeps a chain.
            cloud = Verifier(tmp_path, http_port=http_port, udp_port=udp_port)
            wait_for("the edge to deliver its reports",
                     lambda: not any(get(edge.url + "/v1/edge/status")["pending"].values()))
            assert post(cloud.url + "/v1/auth/device/offline", {"token": token})[0] == 401
            line = reset_and_read(vb.port, timeout=60)
            assert line.startswith("janua: authenticated device=" + device_id), line
            assert "chain: " in line and "tokens:" not in line, line
            audit = cloud.api("GET", f"/v1/audit?device_id={device_id}&limit=50")["entries"]
            assert any(e.get("transport") == "offline" and e.get("result") == "OK" for e in audit), audit
    finally:
        if edge is not None:
            edge.stop()
        cloud.stop()
