"""`janua webhook` through the real CLI against a real verifier subprocess (`janua serve --dev`, its own
delivery task on real time) and a real HTTP receiver on a free localhost port (stdlib http.server in a
thread, so it runs beside the subprocesses)."""

import http.server
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tools.demo import Verifier
from verifier.notify import core

ROOT = Path(__file__).resolve().parents[2]


def janua(*args):
    return subprocess.run([sys.executable, "-m", "tools", *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


@pytest.fixture(scope="module")
def verifier(tmp_path_factory):
    v = Verifier(tmp_path_factory.mktemp("verifier"))
    yield v
    v.stop()


@pytest.fixture
def receiver():
    got = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            got.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/hook", got
    srv.shutdown()


def auth(v):
    return ["--server", v.url, "--token-file", str(v.token_file)]


def test_add_prints_the_secret_once_and_test_is_delivered_signed(verifier, receiver):
    url, got = receiver
    r = janua("webhook", "add", url, "--events", "device.quarantined,gateway.cut_off", "--description", "SOC",
              *auth(verifier))
    assert r.returncode == 0, r.stderr
    m = re.fullmatch(r"webhook (whk_[0-9a-f]{16}) -> (\S+)\nevents: device.quarantined, gateway.cut_off\n"
                     r"secret: ([A-Za-z0-9_-]{43})\njanua: keep the secret now \(it is not shown again\); receivers "
                     r"verify X-Janua-Signature with it\n", r.stdout)
    assert m and m.group(2) == url
    wid, secret = m.group(1), m.group(3)
    listing = janua("webhook", "list", *auth(verifier))
    assert listing.returncode == 0 and f"{wid}  {url}  device.quarantined,gateway.cut_off  (SOC)" in listing.stdout
    assert secret not in listing.stdout
    as_json = json.loads(janua("webhook", "list", "-o", "json", *auth(verifier)).stdout)
    assert [h["id"] for h in as_json if h["id"] == wid] == [wid] and all("secret" not in h for h in as_json)

    r = janua("webhook", "test", wid, *auth(verifier))
    assert r.returncode == 0 and r.stdout.startswith("janua: queued webhook.test (event ")
    deadline = time.monotonic() + 20          # the verifier's own task, every second on real time
    while not got and time.monotonic() < deadline:
        time.sleep(0.1)
    (headers, body), = got
    assert headers["X-Janua-Event"] == "webhook.test"
    core.verify_signature(secret, headers["X-Janua-Signature"], body, time.time())
    while time.monotonic() < deadline:        # the 204 is recorded just after the receiver answered
        out = json.loads(janua("webhook", "deliveries", wid, "-o", "json", *auth(verifier)).stdout)
        if out["deliveries"] and out["deliveries"][0]["state"] == "delivered":
            break
        time.sleep(0.2)
    (d,) = out["deliveries"]
    assert (d["id"], d["state"], d["attempts"], d["last_status"]) == (headers["X-Janua-Delivery"], "delivered", 1, 204)
    text = janua("webhook", "deliveries", wid, *auth(verifier)).stdout
    assert text.startswith(f"{d['id']}  webhook.test (event {d['event_id']})  delivered, 1 attempt(s), last: 204")

    r = janua("webhook", "delete", wid, *auth(verifier))
    assert r.returncode == 0
    assert r.stdout == f"janua: deleted webhook {wid} with its pending deliveries and delivery log\n"
    r = janua("webhook", "delete", wid, *auth(verifier))
    assert r.returncode == 1 and r.stderr.startswith(f"janua: no webhook {wid} in this tenant\n")


def test_add_with_json_output_returns_the_secret_in_the_json(verifier, receiver):
    r = janua("webhook", "add", receiver[0], "-o", "json", *auth(verifier))
    hook = json.loads(r.stdout)
    assert set(hook) == {"id", "url", "events", "description", "created", "secret"}
    assert janua("webhook", "delete", hook["id"], *auth(verifier)).returncode == 0


@pytest.mark.parametrize("argv, message", [
    (("add", "http://127.0.0.1:9/", "--events", "device.quarantined,nope"), "janua: unknown event(s) nope\n"),
    (("delete", "1234"), "janua: a webhook id is whk_ and 16 hex characters, not '1234'\n"),
    (("add", "ftp://example.com/"), "janua: url must be an http:// or https:// URL"),
])
def test_bad_input_is_one_line_error(verifier, argv, message):
    r = janua("webhook", *argv, *auth(verifier))
    assert r.returncode == 1 and r.stderr.startswith(message) and "Traceback" not in r.stderr
