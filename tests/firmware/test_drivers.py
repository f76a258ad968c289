"""The UDP and HTTP drivers (and main.py) on MicroPython against tiny CPython servers.

The servers are a test double of the verifier: they answer with replies computed by CPython's
hmac from the key derived for the device (the real verifier end-to-end test is elsewhere)."""

import hashlib
import hmac
import json
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tools.boards import FIRMWARE_DIR

MASTER = bytes(range(32))
DEV = bytes.fromhex("3f9a0c1b7d2e4a65")


def derive(master, label):
    prk = hmac.new(b"janua/v1", master, hashlib.sha256).digest()
    return hmac.new(prk, label + b"\x01", hashlib.sha256).digest()


KEY = derive(MASTER, b"binauth")


def reply(req, status, server_time, session=None, key=KEY, auth=True):
    body = struct.pack(">BI", status, server_time)
    if session:
        body += struct.pack(">III", *session)
    return body + (hmac.new(key, req[:20] + body, hashlib.sha256).digest()[:8] if auth else bytes(8))


class Script:
    """Answers request n with answers[n](req) -> list of datagrams/bodies; records requests."""

    def __init__(self, answers):
        self.answers = answers
        self.requests = []

    def __call__(self, req):
        self.requests.append(req)
        i = min(len(self.requests), len(self.answers)) - 1
        return self.answers[i](req)


@pytest.fixture
def udp_server():
    servers = []

    def start(script):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.2)
        stop = threading.Event()

        def loop():
            while not stop.is_set():
                try:
                    data, addr = s.recvfrom(100)
                except OSError:
                    continue
                for d in script(data):
                    s.sendto(d, addr)

        t = threading.Thread(target=loop, daemon=True)
        t.start()
        servers.append((stop, t, s))
        return s.getsockname()[1]

    yield start
    for stop, t, s in servers:
        stop.set()
        t.join()
        s.close()


@pytest.fixture
def http_server():
    servers = []

    def start(script, status_for=lambda body: 200):
        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers["Content-Length"])
                body = self.rfile.read(n)
                ok = (self.path == "/v1/binauth"
                      and self.headers["Content-Type"] == "application/octet-stream")
                out = script(body)[0] if ok else b"not found"
                self.send_response(status_for(out) if ok else 404)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *a):
                pass

        srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        servers.append(srv)
        return srv.server_address[1]

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


RUN = """
import json
from binascii import unhexlify
from janua.mac import HMAC
from janua.hkdf import derive
from janua.clock import Clock
from janua.binauth import Client
from janua import {mod}
K = HMAC(derive(bytes(range(32)), "binauth"))
clock = Clock(time_fn=lambda: 1000, epoch_offset=0)
c = Client(unhexlify("3f9a0c1b7d2e4a65"), K, clock)
{mod}.authenticate(c, "127.0.0.1", {port}, {timeout})
print(json.dumps({{"state": c.state, "reason": c.reason, "result": c.result and list(c.result),
                  "now": clock.now(), "source": clock.source}}))
"""


def ts_of(req):
    return struct.unpack(">I", req[8:12])[0]


def test_udp_spoofed_reply_ignored_then_time_sync_then_ok(mp, udp_server):
    script = Script([
        lambda r: [reply(r, 0, 1, (9, 9, 9), key=b"x" * 32),   # spoofed OK: ignored
                   b"\x00" * 200,                              # oversize junk: ignored
                   reply(r, 1, 50000)],                        # authenticated TIME_SYNC
        lambda r: [reply(r, 0, ts_of(r) + 1, (42, ts_of(r) + 3600, 15))],
    ])
    port = udp_server(script)
    out = mp(RUN.format(mod="udp", port=port, timeout=2.0))[0]
    assert out["state"] == 3, out
    assert out["result"][2] == 42 and out["source"] == "server"
    assert [ts_of(r) for r in script.requests] == [1000, 50000]


def test_udp_resends_on_silence_then_gives_up(mp, udp_server):
    script = Script([lambda r: []])
    port = udp_server(script)
    out = mp(RUN.format(mod="udp", port=port, timeout=0.2))[0]
    assert out["state"] == 4 and "no reply" in out["reason"]
    assert len(script.requests) == 3 and len(set(script.requests)) == 1  # same request resent
    assert out["source"] == "none"


def test_udp_unauthenticated_error_is_advisory(mp, udp_server):
    script = Script([lambda r: [reply(r, 3, 0, auth=False)]])
    port = udp_server(script)
    out = mp(RUN.format(mod="udp", port=port, timeout=0.3))[0]
    assert out["state"] == 4 and "unknown_device" in out["reason"]
    assert out["now"] == 1000 and out["source"] == "none"
    assert len(script.requests) == 1  # no resend to a server that did answer


def test_http_time_sync_then_ok(mp, http_server):
    script = Script([lambda r: [reply(r, 1, 7000)],
                     lambda r: [reply(r, 0, 7001, (5, 10600, 15))]])
    port = http_server(script, lambda body: 200 if body[0] == 0 else 409)
    out = mp(RUN.format(mod="http", port=port, timeout=5.0))[0]
    assert out["state"] == 3, out
    assert out["result"][:3] == [0, 7001, 5] and out["now"] == 7001
    assert [ts_of(r) for r in script.requests] == [1000, 7000]


def test_http_spoofed_body_fails_without_touching_clock(mp, http_server):
    script = Script([lambda r: [reply(r, 0, 1, (1, 2, 3), key=b"x" * 32)]])
    port = http_server(script)
    out = mp(RUN.format(mod="http", port=port, timeout=5.0))[0]
    assert out["state"] == 4 and out["source"] == "none" and out["now"] == 1000


def test_http_connection_refused_is_a_failure_not_a_crash(mp):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    out = mp(RUN.format(mod="http", port=port, timeout=1.0))[0]
    assert out["state"] == 4 and out["reason"].startswith("http:")


@pytest.mark.parametrize("raw", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",           # body shorter than declared
    b"HTTP/1.1 200 OK\r\nContent-Length: 5",                       # no end of headers
    b"SMTP 200 OK\r\n\r\n",                                        # not HTTP
    b"HTTP/1.1 2000 OK\r\n\r\n",                                   # bad status code
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n", # chunked: unsupported
    b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 100,                      # body over the cap
], ids=["short_body", "no_header_end", "not_http", "bad_code", "chunked", "oversize"])
def test_malformed_http_response_rejected(mp, raw):
    out = mp("""
import json
from janua.http import parse_response
from janua import TransportError
try:
    parse_response(%r); print(json.dumps("accepted"))
except TransportError:
    print(json.dumps("rejected"))
""" % raw)[0]
    assert out == "rejected"


def config(udp_port, http_port, transport):
    return {"device_id": DEV.hex(), "tenant": "acme", "master_secret": MASTER.hex(),
            "server": {"host": "127.0.0.1", "udp_port": udp_port, "http_port": http_port},
            "transport": transport, "udp_timeout": 0.2}


def run_main(mp):
    p = mp.raw("exec(open(%r).read())\n" % str(FIRMWARE_DIR / "main.py"))
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def test_main_auto_falls_back_from_udp_to_http(mp, udp_server, http_server):
    silent = udp_server(Script([lambda r: []]))
    http = http_server(Script([lambda r: [reply(r, 1, 1800000000)],
                               lambda r: [reply(r, 0, 1800000001, (77, 1800003601, 15))]]))
    (mp.flash / "janua.json").write_text(json.dumps(config(silent, http, "auto")))
    line = run_main(mp)
    assert line == ("janua: authenticated device=3f9a0c1b7d2e4a65 via http session=77 "
                    "expires=1800003601")
    state = json.loads((mp.flash / "janua_state.json").read_text())
    assert state["result"] == "ok" and state["transport"] == "http"
    assert state["last_sent"] == 1800000000 and MASTER.hex() not in json.dumps(state)


def test_main_prints_failure_and_does_not_crash(mp):
    assert run_main(mp).startswith("janua: not provisioned:")
    (mp.flash / "janua.json").write_text(json.dumps(config(1, 1, "udp")))
    line = run_main(mp)
    assert line.startswith("janua: auth failed:"), line
    assert json.loads((mp.flash / "janua_state.json").read_text())["result"].startswith("failed")
