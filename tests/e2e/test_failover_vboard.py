"""End to end for endpoint failover (issue #15, docs/protocol.md 3.7): a cloud verifier and two edge verifiers
(`janua serve` and `janua serve --edge --upstream`, subprocesses on fixed ports so that they come back on the
same ones), a virtual esp32 board flashed and provisioned with `janua provision --endpoint ... --endpoint ...`
(edge 1 preferred, edge 2 the backup, the cloud appended last).

They stop and start under the board: (1) all up, the preferred edge answers; (2) edge 1 down, edge 2 answers
and the board says so, also in `janua console --diag`; (3) edge 1 back: the board stays on edge 2 within the
retry window, then returns to edge 1 (every boot's first run carries a health report, which an edge takes
and forwards to the cloud); (4) everything down: one clear failure line in bounded time, and with
only the cloud back the next boot authenticates to it; (5) the device suspended: the preferred edge's
authenticated NOT_ACTIVE is the answer, the board does not fail over."""

import json
import time

import pytest

from tests.mosquitto import free_ports
from tools.boards import vboard_wifi_args
from tools.demo import Verifier, _janua, reset_and_read

pytestmark = pytest.mark.e2e

RETRY_S = 15


def state(flash):
    return json.loads((flash / "janua_state.json").read_text())


def diag(port):
    out = _janua("console", "--port", port, "--diag").stdout
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


def wait_for(what, check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = check()
        if out:
            return out
        time.sleep(0.5)
    raise AssertionError("timed out waiting for " + what)


def test_board_fails_over_between_edges_and_the_cloud_and_comes_back(tmp_path):
    from tools.vboard import VirtualBoard
    c_http, c_udp, e1_http, e1_udp, e2_http, e2_udp = free_ports(6)
    cloud = Verifier(tmp_path, http_port=c_http, udp_port=c_udp)
    edges = {}

    def start_edge(n):
        http, udp = (e1_http, e1_udp) if n == 1 else (e2_http, e2_udp)
        edges[n] = Verifier(tmp_path, db_name=f"edge{n}.db", http_port=http, udp_port=udp, extra=(
            "--edge", "--upstream", cloud.url, "--upstream-token-file", str(cloud.token_file),
            "--sync-interval", "1"))
        # an edge that has not synced yet refuses everything (unauthenticated): wait until it serves
        wait_for(f"edge {n} to sync", lambda: json.loads(_get(edges[n].url + "/v1/edge/status"))["serving"])

    def stop(v):
        if v is not None:
            v.stop()

    try:
        start_edge(1)
        start_edge(2)
        with VirtualBoard("esp32", tmp_path / "flash") as vb:
            flash = vb.root                 # the board's LittleFS
            _janua("flash", "--port", vb.port, "--board", "esp32")
            out = _janua("provision", "--serial", "FO-1", "--port", vb.port, "--server", cloud.url,
                         "--token-file", str(cloud.token_file), "--udp-port", str(c_udp),
                         "--endpoint", f"127.0.0.1:{e1_udp}:{e1_http}", "--endpoint", f"127.0.0.1:{e2_udp}:{e2_http}",
                         "--retry-preferred", str(RETRY_S), *vboard_wifi_args("esp32")).stdout
            device_id = out.split("provisioned device ")[1].split()[0]
            cfg = json.loads((flash / "janua.json").read_text())
            assert [(e["udp_port"], e["http_port"]) for e in cfg["endpoints"]] == [
                (e1_udp, e1_http), (e2_udp, e2_http), (c_udp, c_http)]
            assert cfg["failover"] == {"retry_preferred_s": RETRY_S}
            assert "health" not in cfg            # health reports on (the default): each boot's first run has one

            # 1. All up: the preferred edge answers, also the boot's first run, which carries a health report
            # (docs/health.md 2.1): the edge takes it and forwards it to the cloud at its next sync.
            line = reset_and_read(vb.port, timeout=60)
            assert line.startswith(f"janua: authenticated device={device_id} via udp session="), line
            assert state(flash)["endpoint"] == [0, "127.0.0.1", False]
            assert "failover_at" not in state(flash)
            assert isinstance(state(flash).get("health_at"), int), state(flash)      # the report was answered
            health = wait_for("the edge's report at the cloud", lambda: (
                lambda d: d if d["via"] == "edge" else None)(cloud.api("GET", f"/v1/devices/{device_id}/health")))
            assert health["operational"]["reset_cause"] is not None, health
            d = diag(vb.port)
            assert d["endpoint"] == "0 127.0.0.1", d
            assert d["endpoints"] == (f"0:127.0.0.1:{e1_udp}:{e1_http} 1:127.0.0.1:{e2_udp}:{e2_http} "
                                      f"2:127.0.0.1:{c_udp}:{c_http}"), d

            # 2. Edge 1 down: edge 2 answers, and the board reports it.
            edges[1].stop()
            line = reset_and_read(vb.port, timeout=60)
            assert line.startswith(f"janua: authenticated device={device_id} via udp endpoint=1:127.0.0.1 "), line
            st = state(flash)
            assert st["endpoint"] == [1, "127.0.0.1", False] and isinstance(st["failover_at"], int), st
            since = st["failover_at"]
            failed_over = time.monotonic()
            assert diag(vb.port)["endpoint"] == f"1 127.0.0.1 (backup since {since})"

            # 3. Edge 1 back: within the retry window the board keeps edge 2 first (no wait on edge 1 at
            # each boot); after it, edge 1 is used again.
            start_edge(1)
            line = reset_and_read(vb.port, timeout=60)
            assert time.monotonic() - failed_over < RETRY_S, "the board was too slow for this test's window"
            assert "endpoint=1:127.0.0.1" in line, line
            assert state(flash)["failover_at"] == since           # the same window, not a new one
            time.sleep(max(0.0, RETRY_S + 1 - (time.monotonic() - failed_over)))
            line = reset_and_read(vb.port, timeout=60)
            assert line.startswith(f"janua: authenticated device={device_id} via udp session="), line
            st = state(flash)
            assert st["endpoint"] == [0, "127.0.0.1", False] and "failover_at" not in st, st
            assert diag(vb.port)["endpoint"] == "0 127.0.0.1"

            # 4. Everything down: a clear failure, in bounded time; with the cloud back, the next boot works.
            for v in (edges[1], edges[2], cloud):
                v.stop()
            t0 = time.monotonic()
            line = reset_and_read(vb.port, timeout=60)
            took = time.monotonic() - t0
            assert line.startswith("janua: auth failed: no endpoint answered: "), line
            assert took < 30, took          # three rounds, ~0.5-1 s and ~1-2 s apart, refusals are immediate
            assert "endpoint" not in state(flash)
            cloud = Verifier(tmp_path, http_port=c_http, udp_port=c_udp)
            line = reset_and_read(vb.port, timeout=60)
            assert line.startswith(f"janua: authenticated device={device_id} via udp endpoint=2:127.0.0.1 "), line
            assert state(flash)["endpoint"] == [2, "127.0.0.1", False]
            on_cloud = time.monotonic()

            # 5. The preferred edge refuses the suspended device with an authenticated NOT_ACTIVE: that is
            # the answer, the board does not fail over to edge 2 or the cloud (which would refuse it too).
            start_edge(1)
            start_edge(2)
            cloud.api("POST", f"/v1/devices/{device_id}/lifecycle", {"action": "suspend"})
            # the cloud's retry window ends (the board tries edge 1 first again); meanwhile edge 1 has synced
            # the suspension (sync interval 1 s)
            time.sleep(max(3.0, RETRY_S + 1 - (time.monotonic() - on_cloud)))
            line = reset_and_read(vb.port, timeout=60)
            assert line == "janua: auth failed: not_active", line
            st = state(flash)
            assert st["endpoint"] == [0, "127.0.0.1", False] and "failover_at" not in st, st
            assert st["result"] == "failed: not_active"
    finally:
        for v in edges.values():
            stop(v)
        stop(cloud)


def _get(url):
    import urllib.request
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()
