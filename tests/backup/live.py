"""Helpers of the tests/backup suites that drive real `janua` subprocesses: the CLI, a `janua serve --dev`
on free ports, a device provisioned over HTTP, one binary-auth request over UDP (tests.support.AuthDevice)."""

import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support import AuthDevice

ROOT = Path(__file__).resolve().parents[2]
OK, REPLAY = 0, 5          # binary auth status codes, docs/protocol.md 3.2


def janua(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "tools", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def serve(db, *extra):
    return janua("serve", "--dev", "--db", str(db), "--http-port", "0", "--udp-port", "0", "--dtls-port", "0",
                 *extra, timeout=60)


def provision(v, serial):
    r = v.api("POST", "/v1/devices", {"serial_number": serial})
    return AuthDevice(r["device_id"], r["master_secret"], clock=time.time)


def udp_auth(v, device, req):
    """Send one request to the verifier's UDP endpoint: (status, whether the reply's tag verifies)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(10)
        s.sendto(req, ("127.0.0.1", v.udp_port))
        data, _ = s.recvfrom(64)
    r = device.reply(req, data)
    return r["status"], r["authenticated"]
