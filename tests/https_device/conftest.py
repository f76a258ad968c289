"""HTTPS on the device (firmware/janua/https.py) on the MicroPython unix port with the esp32 heap, against a
CPython HTTPS server (TLS 1.2+, a certificate from a CA made in tmp_path) that answers binary auth and a JSON
route like the verifier. The real verifier over HTTPS is tests/tls/."""

import datetime
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tools.boards import MPRun

# the device and the verifier's side of binary auth, as the plain-HTTP driver tests have them
from tests.firmware.test_drivers import DEV, MASTER, reply  # noqa: E402,F401


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class PKI:
    """A CA and server certificates it issues, as files in `d`."""

    def __init__(self, d, cn="janua test CA"):
        self.d = d
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=30))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))

    def ca_der(self):
        return self.cert.public_bytes(serialization.Encoding.DER)

    def server(self, name, host="localhost"):
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(_name(host)).issuer_name(self.cert.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
                .sign(self.key, hashes.SHA256()))
        cp, kp = self.d / (name + ".pem"), self.d / (name + ".key")
        cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        kp.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
        return cp, kp


@pytest.fixture
def pki(tmp_path):
    return PKI(tmp_path)


@pytest.fixture
def https_server(pki):
    """start(host="localhost") -> (port, seen): an HTTPS server with a certificate for `host`; `seen` lists
    (method, path, tls version) of every request."""
    servers = []

    def start(host="localhost", answer_time=1800000000):
        seen = []

        class H(BaseHTTPRequestHandler):
            def _send(self, code, body, ctype):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                seen.append(("POST", self.path, self.connection.version()))
                if self.path == "/v1/binauth":
                    self._send(200, reply(body, 0, answer_time, (77, answer_time + 3600, 15)),
                               "application/octet-stream")
                else:
                    self._send(404, b"{}", "application/json")

            def do_GET(self):
                seen.append(("GET", self.path, self.connection.version()))
                self._send(200, json.dumps({"hello": "over tls"}).encode(), "application/json")

            def log_message(self, *a):
                pass

        cert, key = pki.server("srv%d" % len(servers), host)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert, key)
        srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        servers.append(srv)
        return srv.server_address[1], seen

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def mp(tmp_path):
    return MPRun(tmp_path / "board")


def config(port, tls=True, host="localhost"):
    return {"device_id": DEV.hex(), "tenant": "acme", "master_secret": MASTER.hex(),
            "server": {"host": host, "http_port": port, "tls": tls}, "transport": "http",
            "health": {"interval_s": 0}}
