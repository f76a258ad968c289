"""The gateway side of TPM attestation (docs/attestation.md section 6): drives tpm2-tools through a
TCTI (`device:/dev/tpmrm0` by default; `swtpm:host=127.0.0.1,port=N` for a software TPM) to read the
endorsement key and its certificate, create the attestation key, activate the verifier's credential and
quote PCRs 0-7 of the SHA-256 bank; and the two exchanges with the cloud's /v1/gateways routes that use
it (`enrol`, `attest`), over any async `call(method, path, body) -> JSON` (the edge's upstream client
for `janua serve --edge --tpm`, tools/api.py's API.call through `sync_call` for `janua gateway`).

Keys live in the TPM at persistent handles (the EK at 0x81010001, where swtpm_setup and most
provisioning put it, else created there; the AK at 0x81010002), so no key is ever on disk (the one-time
activation credential passes through the 0700 work directory and is deleted at once) and no transient
object outlives a command (a TCTI without a resource manager, as swtpm's, would fill up).
What it deliberately does not do: ECC EKs, the event log, or an owner/endorsement password (an
endorsement hierarchy with a password is not supported).
"""

import asyncio
import os
import subprocess
import tempfile

EK_HANDLE = "0x81010001"
AK_HANDLE = "0x81010002"
EK_CERT_NV_RSA = "0x01c00002"
CRED_MAGIC = bytes.fromhex("badcc0de00000001")     # tpm2-tools' credential file header (magic, version 1)
PCR_LIST = "sha256:0,1,2,3,4,5,6,7"
DEFAULT_TCTI = "device:/dev/tpmrm0"
TIMEOUT_S = 60


class TPMToolError(Exception):
    """A tpm2-tools command failed or is missing."""


class TPM:
    """One TPM behind `tcti`; `workdir` is a private (0700) directory for the tools' files: public data,
    and for the moment of an activation the decrypted credential (`cred.out`, deleted at once)."""

    def __init__(self, tcti=DEFAULT_TCTI, workdir=None):
        self.tcti = tcti
        self.workdir = workdir or tempfile.mkdtemp(prefix="janua-tpm-")
        os.makedirs(self.workdir, mode=0o700, exist_ok=True)
        os.chmod(self.workdir, 0o700)       # a directory that existed keeps no group/other access

    def _run(self, *argv, check=True):
        env = dict(os.environ, TPM2TOOLS_TCTI=self.tcti, TMPDIR=self.workdir)
        try:
            p = subprocess.run(argv, cwd=self.workdir, env=env, capture_output=True, timeout=TIMEOUT_S)
        except FileNotFoundError:
            raise TPMToolError(f"{argv[0]} not found: install tpm2-tools") from None
        except subprocess.TimeoutExpired:
            raise TPMToolError(f"{argv[0]} did not finish in {TIMEOUT_S} s (is the TPM at {self.tcti} reachable?)") from None
        if check and p.returncode != 0:
            err = p.stderr.decode(errors="replace").strip().splitlines()
            raise TPMToolError(f"{argv[0]} failed: {err[-1] if err else 'exit ' + str(p.returncode)}")
        return p

    def _path(self, name):
        return os.path.join(self.workdir, name)

    def _read(self, name):
        with open(self._path(name), "rb") as f:
            return f.read()

    def _write(self, name, data):
        with open(self._path(name), "wb") as f:
            f.write(data)

    def _flush(self):
        self._run("tpm2_flushcontext", "-t", check=False)
        self._run("tpm2_flushcontext", "-s", check=False)

    def _persistent(self, handle, out):
        return self._run("tpm2_readpublic", "-c", handle, "-o", out, check=False).returncode == 0

    def ek_public(self):
        """TPM2B_PUBLIC of the RSA EK, created at EK_HANDLE from the default template if absent."""
        if not self._persistent(EK_HANDLE, "ek.pub"):
            self._run("tpm2_createek", "-c", EK_HANDLE, "-G", "rsa", "-u", "ek.pub")
            self._flush()
        return self._read("ek.pub")

    def ek_cert(self):
        """The RSA EK certificate (DER) from its NV index."""
        self._run("tpm2_nvread", EK_CERT_NV_RSA, "-o", "ek.der")
        return self._read("ek.der")

    def ak_public(self, alg="rsa", new=False):
        """TPM2B_PUBLIC of the AK at AK_HANDLE (a restricted signing key under the EK), created if absent
        or when `new` (the old one is evicted). alg: rsa (RSASSA) or ecc (ECDSA P-256)."""
        if not new and self._persistent(AK_HANDLE, "ak.pub"):
            return self._read("ak.pub")
        if self._persistent(AK_HANDLE, "old.pub"):
            self._run("tpm2_evictcontrol", "-c", AK_HANDLE)
        self.ek_public()
        scheme = {"rsa": "rsassa", "ecc": "ecdsa"}[alg]
        self._run("tpm2_createak", "-C", EK_HANDLE, "-c", "ak.ctx", "-G", alg, "-g", "sha256", "-s", scheme,
                  "-u", "ak.pub", "-n", "ak.name")
        try:
            self._run("tpm2_evictcontrol", "-c", "ak.ctx", AK_HANDLE)
        finally:
            os.unlink(self._path("ak.ctx"))
            self._flush()
        return self._read("ak.pub")

    def activate(self, credential_blob, encrypted_secret):
        """TPM2_ActivateCredential with the EK (policy secret of the endorsement hierarchy): the credential."""
        self._write("cred.in", CRED_MAGIC + credential_blob + encrypted_secret)
        try:
            self._run("tpm2_startauthsession", "--policy-session", "-S", "session.ctx")
            self._run("tpm2_policysecret", "-S", "session.ctx", "-c", "e")
            self._run("tpm2_activatecredential", "-c", AK_HANDLE, "-C", EK_HANDLE, "-i", "cred.in", "-o", "cred.out",
                      "-P", "session:session.ctx")
            credential = self._read("cred.out")
        finally:
            self._run("tpm2_flushcontext", "session.ctx", check=False)
            self._flush()
            for name in ("cred.out", "session.ctx"):
                if os.path.exists(self._path(name)):
                    os.unlink(self._path(name))
        return credential

    def quote(self, nonce):
        """TPM2_Quote of PCRs 0-7 (SHA-256) with `nonce`: (TPMS_ATTEST, TPMT_SIGNATURE, PCR values)."""
        self._run("tpm2_quote", "-c", AK_HANDLE, "-l", PCR_LIST, "-q", nonce.hex(), "-g", "sha256",
                  "-m", "quote.msg", "-s", "quote.sig", "-o", "quote.pcrs", "-F", "values")
        self._flush()
        return self._read("quote.msg"), self._read("quote.sig"), self._read("quote.pcrs")

    def extend(self, pcr, digest):
        """Extend one SHA-256 PCR (tests and bring-up only)."""
        self._run("tpm2_pcrextend", f"{pcr}:sha256={digest.hex()}")


async def enrol(call, tpm, name, model, ek_chain=(), ak_alg="rsa"):
    """Enrol this gateway: POST /v1/gateways, activate the credential in the TPM, POST .../activate.
    `call` is an async (method, path, body) -> JSON; the TPM commands run in a thread. Returns the
    gateway (JSON) as the verifier answers."""
    ek, cert = await asyncio.to_thread(tpm.ek_public), await asyncio.to_thread(tpm.ek_cert)
    ak = await asyncio.to_thread(tpm.ak_public, ak_alg)
    body = {"name": name, "model": model, "ek_public": ek.hex(), "ek_cert": cert.hex(), "ak_public": ak.hex(),
            "ek_chain": [bytes(c).hex() for c in ek_chain]}
    made = await call("POST", "/v1/gateways", body)
    credential = await asyncio.to_thread(tpm.activate, bytes.fromhex(made["credential_blob"]),
                                         bytes.fromhex(made["encrypted_secret"]))
    return await call("POST", f"/v1/gateways/{made['id']}/activate", {"credential": credential.hex()})


async def attest(call, tpm, gateway_id):
    """One attestation: a challenge, a quote over its nonce, the result (status, trust level, EAR)."""
    nonce = bytes.fromhex((await call("POST", f"/v1/gateways/{gateway_id}/challenge", None))["nonce"])
    attest_, signature, pcrs = await asyncio.to_thread(tpm.quote, nonce)
    return await call("POST", f"/v1/gateways/{gateway_id}/quote",
                      {"quote": attest_.hex(), "signature": signature.hex(), "pcrs": pcrs.hex()})


def sync_call(call):
    """An async call of a synchronous one (tools/api.py's API.call), for enrol and attest."""
    async def acall(method, path, body=None):
        return call(method, path, body)
    return acall
