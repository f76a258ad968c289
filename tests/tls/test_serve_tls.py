"""`janua serve` with TLS options, as a subprocess: plain HTTP off loopback refused (allowed with
--insecure-http and its warning), a readable key refused in one line, the --dev self-signed pair made
0600 and reused, and the ready line that tools/demo.py and bench/run.py parse."""

import os
import re
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509

from tests.support import KEK

ROOT = Path(__file__).parents[2]
QUIET = ["--http-port", "0", "--udp-port", "-1", "--dtls-port", "-1", "--log-level", "WARNING"]


def _env():
    return dict(os.environ, JANUA_KEK=KEK.hex())


def _run(tmp_path, *argv):
    return subprocess.run([sys.executable, "-m", "tools", "serve", "--db", str(tmp_path / "j.db"), *QUIET, *argv],
                          cwd=ROOT, capture_output=True, text=True, env=_env(), timeout=60)


class Serve:
    """`janua serve ...` until its ready line; .lines: what it printed before, .ready, .port; stop()."""

    def __init__(self, argv, env=None):
        self.proc = subprocess.Popen([sys.executable, "-m", "tools", "serve", *QUIET, *argv], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or _env())
        self.lines = []
        for line in self.proc.stdout:
            if re.match(r"janua serve: http=", line):
                self.ready = line.rstrip("\n")
                self.port = int(re.match(r"janua serve: http=[^ ]+:(\d+) ", line).group(1))
                return
            self.lines.append(line.rstrip("\n"))
        raise AssertionError("no ready line: " + self.proc.stderr.read())

    def stop(self):
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=20)
        assert self.proc.returncode == 0, err
        return err


def test_plain_http_on_all_addresses_is_refused(tmp_path):
    r = _run(tmp_path, "--http-host", "0.0.0.0")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.splitlines()[0] == ("janua: refusing plain HTTP on 0.0.0.0: not a loopback address, so admin "
                                        "tokens and device secrets would cross the network in clear")
    assert "--insecure-http" in r.stderr.splitlines()[1]
    assert list(tmp_path.iterdir()) == []


def test_insecure_http_serves_with_one_warning(tmp_path):
    s = Serve(["--db", str(tmp_path / "j.db"), "--http-host", "0.0.0.0", "--insecure-http"])
    try:
        assert s.ready == f"janua serve: http=0.0.0.0:{s.port} udp=off dtls=off"
        with urllib.request.urlopen(f"http://127.0.0.1:{s.port}/healthz", timeout=10) as r:
            assert r.status == 200
    finally:
        err = s.stop()
    warnings = [line for line in err.splitlines() if " WARNING " in line]
    assert len(warnings) == 1
    assert warnings[0].endswith("janua.verifier: plain HTTP on 0.0.0.0 (--insecure-http): admin tokens and "
                                "device secrets cross the network in clear")


def test_a_key_others_may_read_is_refused_in_one_line(tmp_path, pki):
    os.chmod(pki.key_file, 0o644)
    r = _run(tmp_path, "--tls-cert", str(pki.cert_file), "--tls-key", str(pki.key_file))
    assert r.returncode == 1
    assert r.stderr == (f"janua: the TLS key {pki.key_file} is accessible by group or others (mode 0644); "
                        f"chmod 600 {pki.key_file}\n")


@pytest.mark.parametrize("argv,message", [
    (["--tls-cert", "c.pem"], "janua: TLS needs both --tls-cert FILE and --tls-key FILE"),
    (["--tls-key", "k.pem"], "janua: TLS needs both --tls-cert FILE and --tls-key FILE"),
    (["--tls-self-signed"], "janua: --tls-self-signed is for local use with --dev"),
    (["--dev", "--tls-self-signed", "--tls-cert", "c.pem", "--tls-key", "k.pem"],
     "janua: --tls-self-signed makes its own certificate: drop --tls-cert/--tls-key"),
    (["--trusted-proxy", "proxy.local"], "janua: --trusted-proxy: not an address or CIDR: 'proxy.local'"),
])
def test_option_errors(tmp_path, argv, message):
    r = _run(tmp_path, *argv)
    assert r.returncode == 1 and r.stderr.splitlines()[0] == message


def test_https_with_a_ca_signed_certificate(tmp_path, pki):
    s = Serve(["--db", str(tmp_path / "j.db"), "--tls-cert", str(pki.cert_file), "--tls-key", str(pki.key_file)])
    try:
        assert s.ready == f"janua serve: http=127.0.0.1:{s.port} udp=off dtls=off tls=on"
        ctx = ssl.create_default_context(cafile=str(pki.ca_file))
        with urllib.request.urlopen(f"https://localhost:{s.port}/healthz", context=ctx, timeout=10) as r:
            assert r.status == 200
    finally:
        s.stop()


def test_dev_self_signed_made_0600_and_reused(tmp_path):
    db = tmp_path / "j.db"
    pem, key = tmp_path / "j.db.tls.pem", tmp_path / "j.db.tls.key"
    env = {k: v for k, v in os.environ.items() if k != "JANUA_KEK"}
    s = Serve(["--db", str(db), "--dev", "--tls-self-signed"], env=env)
    try:
        assert s.lines[0] == f"janua serve: tls-cert={pem} tls-key={key} self-signed created"
        assert s.ready == f"janua serve: http=127.0.0.1:{s.port} udp=off dtls=off tls=on"
        assert key.stat().st_mode & 0o777 == 0o600
        ctx = ssl.create_default_context(cafile=str(pem))       # the client trusts exactly that certificate
        for host in ("127.0.0.1", "localhost"):
            with urllib.request.urlopen(f"https://{host}:{s.port}/healthz", context=ctx, timeout=10) as r:
                assert r.status == 200
    finally:
        s.stop()
    cert = x509.load_pem_x509_certificate(pem.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    assert cert.public_key().curve.name == "secp256r1"
    before = pem.read_bytes(), key.read_bytes()
    s = Serve(["--db", str(db), "--dev", "--tls-self-signed"], env=env)
    try:
        assert s.lines[0] == f"janua serve: tls-cert={pem} tls-key={key} self-signed reused"
    finally:
        s.stop()
    assert (pem.read_bytes(), key.read_bytes()) == before


def test_ready_lines_parse_in_demo_and_bench():
    from bench.run import ports_of
    from tools.demo import SERVE_LINE, SERVE_TLS
    plain = "janua serve: http=127.0.0.1:8080 udp=127.0.0.1:5685 dtls=127.0.0.1:5684"
    https = plain + " tls=on"
    edge = "janua serve: http=127.0.0.1:8081 udp=127.0.0.1:5686 dtls=off tls=on edge upstream=https://cloud:8080"
    assert SERVE_LINE.search(https).groups() == ("127.0.0.1", "8080", "127.0.0.1", "5685", "127.0.0.1", "5684")
    assert SERVE_LINE.search(edge).group(2, 4) == ("8081", "5686")
    assert [bool(SERVE_TLS.search(x)) for x in (plain, https, edge)] == [False, True, True]
    assert [ports_of(x) for x in (plain, https, edge)] == [(8080, 5685), (8080, 5685), (8081, 5686)]
