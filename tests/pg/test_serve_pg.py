"""`janua serve --db postgresql://...`: two real verifier processes sharing one database of the private cluster
(tests/pgcluster.py). A device provisioned through one authenticates to both, alternately; one packet sent to both
at once is accepted once; a suspension made through one is refused by the other; one instance killed under load
leaves the other serving and no accepted packet accepted again; failed tags sent to both lock the host out of both. The tenant is made with `janua tenant create
--db URL`; the KEK is a 0600 file both instances are given."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.pgcluster import fresh_database
from tests.support import AuthDevice
from tools.demo import SERVE_LINE

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
OK, SIGNATURE, NOT_ACTIVE, REPLAY, LOCKED_OUT = 0, 2, 4, 5, 7     # docs/protocol.md 3.3


class Instance:
    def __init__(self, url, kek, state):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tools", "serve", "--db", url, "--kek-file", str(kek), "--state-dir", str(state),
             "--http-port", "0", "--udp-port", "0", "--dtls-port", "-1", "--log-level", "WARNING"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        deadline = time.monotonic() + 30
        self.http = self.udp = None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = SERVE_LINE.search(line)
            if m:
                self.http, self.udp = int(m.group(2)), int(m.group(4))
                break
        assert self.http, self.proc.stderr.read() if self.proc.poll() is not None else "no ready line"
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(5)
        self.sock.connect(("127.0.0.1", self.udp))

    def auth(self, req):
        self.sock.send(req)
        return self.sock.recv(64)[0]

    def api(self, token, method, path, body=None):
        r = urllib.request.Request(f"http://127.0.0.1:{self.http}{path}", method=method,
                                   data=None if body is None else json.dumps(body).encode(),
                                   headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(r, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def stop(self):
        self.sock.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)


@pytest.fixture
def world(pg_url, tmp_path):
    url = fresh_database(pg_url)
    kek = tmp_path / "kek"
    fd = os.open(kek, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, os.urandom(32))
    os.close(fd)
    r = subprocess.run([sys.executable, "-m", "tools", "tenant", "create", "acme", "--db", url],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    a, b = Instance(url, kek, tmp_path / "a"), Instance(url, kek, tmp_path / "b")
    yield a, b, token
    a.stop()
    b.stop()


def device(inst, token, serial):
    made = inst.api(token, "POST", "/v1/devices", {"serial_number": serial})
    return AuthDevice(made["device_id"], made["master_secret"])


def test_two_serve_processes_share_one_registry(world):
    a, b, token = world
    d = device(a, token, "PG-1")
    now = int(time.time())
    assert [inst.auth(d.request(now + i)) for i, inst in enumerate((a, b, a, b))] == [OK, OK, OK, OK]
    p = d.request(now + 10)
    assert sorted([a.auth(p), b.auth(p)]) == [OK, REPLAY]          # the same packet, once
    a.api(token, "POST", f"/v1/devices/{d.hex}/lifecycle", {"action": "suspend", "reason": "test"})
    t0, got = time.monotonic(), OK
    for i in range(20, 400):
        got = b.auth(d.request(now + i))
        if got != OK:
            break
        time.sleep(0.01)
    assert got == NOT_ACTIVE and time.monotonic() - t0 < 5


def test_failed_tags_sent_to_both_instances_lock_the_host_out_of_both(world):
    a, b, token = world
    d = device(a, token, "PG-L1")
    now = int(time.time())
    assert a.auth(d.request(now)) == OK
    forged = []
    for i in range(1, 6):
        p = bytearray(d.request(now + i))
        p[19] ^= 1
        forged.append(bytes(p))
    assert [inst.auth(p) for inst, p in zip((a, b, a, b, b), forged)] == [SIGNATURE] * 5
    assert a.auth(d.request(now + 10)) == LOCKED_OUT          # 3 failures on a, 2 on b: the host is locked out
    assert b.auth(d.request(now + 11)) == LOCKED_OUT


def test_one_instance_killed_under_load_the_other_serves_and_no_packet_is_accepted_twice(world):
    a, b, token = world
    # 10 devices, 5 requests each per instance: within each instance's share (half, two alive) of the device rate
    devs = [device(a, token, f"PG-K{i}") for i in range(10)]
    now = int(time.time())
    sent = []
    for i in range(100):
        d = devs[i % 10]
        p = d.request(now + i)
        sent.append(p)
        if i == 50:
            a.proc.send_signal(signal.SIGKILL)
            a.proc.wait(timeout=10)
        if i < 50:
            assert a.auth(p) == OK
        else:
            assert b.auth(p) == OK
    # every packet, replayed to the survivor, is refused: what a accepted before it died was written
    # (paced: the survivor still counts two instances alive, so its share of the tenant's source rate is 50/s)
    got = set()
    for p in sent:
        got.add(b.auth(p))
        time.sleep(0.03)
    assert got == {REPLAY}
