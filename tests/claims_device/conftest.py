"""Board side of zero-touch claims (janua.claim) on the MicroPython unix port (esp32 heap) and CPython.

`VECTORS` is docs/vectors/claim.json (the verifier side's, generated once); `answer()` is a test double
of the verifier's answer written here from docs/claims.md with CPython's hmac, for the tests that need
answers the vectors do not hold (other nonces, malformed ones); the real verifier is in test_e2e_claim.py."""

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tools.boards import MPRun

VECTORS = json.loads((Path(__file__).resolve().parents[2] / "docs" / "vectors" / "claim.json").read_text())
TYPICAL = VECTORS["vectors"][1]


def _h(key, msg):
    return hmac.new(key, msg, hashlib.sha256).digest()


def derive(key, label):
    return _h(_h(b"janua/v1", key), label + b"\x01")


def answer(k_c, req_nonce, device_id, server_nonce, master, config, version=1, kind=2):
    """A claim answer (docs/claims.md) from CPython's hmac: the test double of the verifier."""
    ks = _h(derive(k_c, b"claim-enc"), req_nonce + server_nonce + device_id)
    body = bytes([version, kind]) + device_id + server_nonce + bytes(a ^ b for a, b in zip(master, ks))
    body += len(config).to_bytes(2, "big") + config
    return body + _h(derive(k_c, b"claim-mac"), req_nonce + body)[:16]


@pytest.fixture
def mp(tmp_path):
    return MPRun(tmp_path)


@pytest.fixture
def http_server():
    """start(handler) -> port: handler(path, body) -> (status, body bytes, content type); requests recorded."""
    servers = []

    def start(handler):
        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status, out, ctype = handler(self.path, body)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *a):
                pass

        srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return srv.server_address[1]

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()
