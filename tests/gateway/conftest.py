"""Fixtures for gateway TPM attestation: a real software TPM (swtpm in socket mode on free localhost
ports, its state in tmp_path) manufactured by swtpm_setup with an EK certificate from a local CA whose
configuration and keys live in tmp_path (not the system's /var/lib/swtpm-localca), driven through
verifier/edge/tpm.py (tpm2-tools over the swtpm TCTI); and the cloud verifier in its own thread on a
real HTTP port (tests/api's ServerThread, fake clock), reached with the host tools' API client.

Manufacturing (an RSA CA key, the EK) takes about a second, so each CA's TPM is manufactured once per
session and its state copied for each test; each test starts its own swtpm on that copy, so PCRs start
from zero (startup clear) and extensions never leak between tests. Skips with the reason when swtpm
or tpm2-tools are absent (CI installs them: Makefile TEST_DEBS)."""

import hashlib
import os
import shutil
import socket
import subprocess
import time

import pytest

from tests.api.test_schemathesis import ServerThread
from tests.support import AdminTenant
from tools.api import API
from verifier.edge.tpm import TPM

TOOLS = ("swtpm", "swtpm_setup", "swtpm_localca", "tpm2_quote", "tpm2_createak", "tpm2_activatecredential")
MISSING = [t for t in TOOLS if shutil.which(t) is None]
needs_swtpm = pytest.mark.skipif(bool(MISSING), reason=f"swtpm/tpm2-tools absent ({', '.join(MISSING)}): "
                                 "apt-get install swtpm swtpm-tools tpm2-tools")
BOOT = [hashlib.sha256(b"janua gateway boot %d" % i).digest() for i in range(8)]


def manufacture(root, name):
    """A TPM state with an RSA EK and its certificate from a new local CA, all under root/name."""
    d = root / name
    (d / "ca").mkdir(parents=True)
    (d / "state").mkdir()
    (d / "localca.conf").write_text(f"statedir = {d}/ca\nsigningkey = {d}/ca/signkey.pem\n"
                                    f"issuercert = {d}/ca/issuercert.pem\ncertserial = {d}/ca/certserial\n")
    (d / "localca.options").write_text("--platform-manufacturer janua\n--platform-version 2.1\n--platform-model gw\n")
    (d / "setup.conf").write_text(f"create_certs_tool = {shutil.which('swtpm_localca')}\n"
                                  f"create_certs_tool_config = {d}/localca.conf\n"
                                  f"create_certs_tool_options = {d}/localca.options\nactive_pcr_banks = sha256\n")
    out = subprocess.run(["swtpm_setup", "--tpm2", "--tpmstate", str(d / "state"), "--create-ek-cert",
                          "--lock-nvram", "--config", str(d / "setup.conf"), "--overwrite"],
                         capture_output=True, text=True, timeout=120, env=dict(os.environ, TMPDIR=str(d)))
    if out.returncode != 0:
        raise RuntimeError("swtpm_setup failed: " + out.stdout + out.stderr)
    return d


def _der(pem_path):
    return subprocess.run(["openssl", "x509", "-in", str(pem_path), "-outform", "der"], capture_output=True,
                          check=True).stdout


def _free_port_pair():
    """Two free consecutive localhost ports: the swtpm TCTI reaches the control channel at port + 1."""
    for _ in range(100):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port, port + 1
    raise RuntimeError("no two consecutive free ports")


class SoftTPM:
    """A running swtpm on a copy of a manufactured state, with the TPM driver and its CA's certificates."""

    def __init__(self, made, workdir):
        self.made, self.workdir = made, workdir
        shutil.copytree(made / "state", workdir / "state")
        (workdir / "tools").mkdir()
        self.root_pem = (made / "ca" / "swtpm-localca-rootca-cert.pem").read_text()
        self.issuer_der = _der(made / "ca" / "issuercert.pem")
        self.start()

    def start(self):
        """Start swtpm on this TPM's state (a power-on: PCRs are zero, persistent keys are kept)."""
        port, ctrl = _free_port_pair()
        self.proc = subprocess.Popen(
            ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={self.workdir / 'state'}",
             "--server", f"type=tcp,port={port},bindaddr=127.0.0.1", "--ctrl", f"type=tcp,port={ctrl},bindaddr=127.0.0.1",
             "--flags", "not-need-init,startup-clear"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("swtpm did not start: " + self.proc.stderr.read().decode(errors="replace"))
                time.sleep(0.05)
        self.tpm = TPM(f"swtpm:host=127.0.0.1,port={port}", str(self.workdir / "tools"))

    def reboot(self):
        self.close()
        self.start()

    def boot(self, pcr7=None):
        """What firmware does at boot: measure into PCRs 0-7 (PCR 7 a second time with `pcr7` if given)."""
        for i, d in enumerate(BOOT):
            self.tpm.extend(i, d)
        if pcr7 is not None:
            self.tpm.extend(7, pcr7)

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stderr.close()


@pytest.fixture(scope="session")
def manufactured(tmp_path_factory):
    if MISSING:
        pytest.skip(f"swtpm/tpm2-tools absent ({', '.join(MISSING)})")
    root = tmp_path_factory.mktemp("tpm")
    return {"ca1": manufacture(root, "ca1"), "ca2": manufacture(root, "ca2")}


@pytest.fixture
def soft_tpm(manufactured, tmp_path):
    t = SoftTPM(manufactured["ca1"], tmp_path / "tpm1")
    yield t
    t.close()


@pytest.fixture
def other_ca_tpm(manufactured, tmp_path):
    """A TPM whose EK certificate comes from another local CA (not registered with the tenant)."""
    t = SoftTPM(manufactured["ca2"], tmp_path / "tpm2")
    yield t
    t.close()


class Cloud:
    def __init__(self, handle, clock, tenant):
        self.handle, self.clock, self.tenant, self.url = handle, clock, tenant, handle.url
        self.api = API(handle.url, token=tenant.token)

    def edge_token(self):
        """A token of role edge of the tenant (what one gateway's edge holds): (token id, API)."""
        from verifier.registry import core as registry
        from verifier.appkeys import STORAGE
        token_id, token = registry.issue_token(self.handle.app[STORAGE], self.tenant.id, self.clock(), role="edge")
        return token_id, API(self.url, token=token)


@pytest.fixture
def cloud(tmp_path):
    srv = ServerThread(tmp_path / "janua.db")
    # the fake clock starts at the wall clock's second: the EK certificates were made just now, and are
    # not valid before that
    srv.clock.now = float(int(time.time()))
    handle = srv.start()
    try:
        yield Cloud(handle, srv.clock, AdminTenant(handle.app, "acme", srv.clock))
    finally:
        srv.stop()
