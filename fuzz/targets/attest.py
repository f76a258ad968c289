"""Board attestation evidence (verifier/attest/core.py appraise, docs/attestation.md sections 2 and 3) on
a real registry with a signed app release (1.0.0) and a model reference (esp32) to compare against. An
input is appraised twice: as sent (with the device's challenge outstanding, nonce of the vectors), and
as the records of an evidence that the harness frames and tags with the device's K_attest and the
outstanding nonce, so that mutated records reach the record parser and the appraisal behind the tag.
Every input's writes are rolled back. The one documented error is AttestRefused; an accepted evidence
has one of the statuses and trust levels of section 3 and an integer vector.
"""

import hashlib
import hmac
import struct

from fuzz.harness import check
from fuzz.world import DEVICE_ID, MASTER, T0, World, vectors
from verifier import keys
from verifier.attest import core as attest, evidence
from verifier.registry.audit import RefusalSummary
from verifier.tokens.core import TokenKeys

ALLOWED = (attest.AttestRefused,)
NONCE = bytes.fromhex("a0a1a2a3a4a5a6a7a8a9aaabacadaeaf")      # the vectors' nonce
K_ATTEST = keys.derive_key(MASTER, b"attest")
FILES = [("main.py", 21, "18197e1e33680a49a1e6fd22cc496c0d221b8b4419684121a4d4bcaed31ea0cc"),
         ("app.py", 30, "98d336ee75d34acf266831584258a1beba50cd03bcc3148768d9827c2ab0cbf1")]


class _Rollback(Exception):
    pass


def frame(records):
    """Evidence of the fixed device for the outstanding nonce around `records`, tagged with K_attest."""
    signed = bytes((evidence.VERSION,)) + DEVICE_ID + NONCE + struct.pack(">IH", T0, len(records)) + records
    return signed + hmac.new(K_ATTEST, signed, hashlib.sha256).digest()[:evidence.TAG_LEN]


def _accepted(result):
    check(result["status"] in ("affirming", "warning", "contraindicated"), "status")
    check(result["trust_level"] in (0, 40, 70), "trust level")
    check(isinstance(result["ear"], str) and result["ear"].count(".") == 2, "EAR")


def make(workdir):
    world = World(workdir + "/world")
    st = world.storage
    rel = {"id": "rel_" + "ab" * 8, "tenant_id": world.tenant_id, "kind": "app", "name": "fuzz", "version": "1.0.0",
           "counter": 1, "kid": "00" * 8, "size": 51, "manifest": b"{}", "sig": b"{}", "manifest_sha256": "00" * 32,
           "created": T0}
    st.add_release(rel, [(rel["id"], p, s, h) for p, s, h in FILES])
    st.add_attest_ref({"id": "ref_fuzz", "tenant_id": world.tenant_id, "model": "esp32", "micropython": "1.24.1",
                       "build": "v1.24.1", "modules": [{"name": "attest.mpy", "size": 1, "sha256": "00" * 32}],
                       "app_files": None, "created": T0})
    token_keys = TokenKeys(st, world.sealer)
    token_keys.load(T0)
    summary = RefusalSummary()

    def appraise(data):
        try:
            with st.transaction():
                st.put_challenge(world.tenant_id, DEVICE_ID, NONCE, T0, T0 + 300, "manual")
                try:
                    _accepted(attest.appraise(st, world.sealer, token_keys, data, T0, "fuzz", None, summary))
                except attest.AttestRefused:
                    pass
                raise _Rollback
        except _Rollback:
            pass

    def one_input(data):
        appraise(data)
        if len(data) <= evidence.MAX_EVIDENCE - evidence.HEADER_LEN - evidence.TAG_LEN:
            appraise(frame(data))

    return one_input


def seeds(workdir):
    out = []
    v = vectors("attest.json")
    for case in (v or {}).get("valid", []):
        ev = bytes.fromhex(case["evidence"])
        out += [ev, ev[evidence.HEADER_LEN:-evidence.TAG_LEN]]
    for files, version in ((FILES, "1.0.0"), (FILES[:1], "1.0.0"), (FILES, "9.9.9")):
        ev = evidence.encode(K_ATTEST, DEVICE_ID, NONCE, T0, micropython="1.24.1", build="v1.24.1", board="esp32",
                             app=(1, 0, version), files=files, modules=[("attest.mpy", 1, "00" * 32)],
                             boot=(1, 1, 5), hw=(0x9, b"\x01"), extra=b"\x80\x01x")
        out += [ev, ev[evidence.HEADER_LEN:-evidence.TAG_LEN]]
    return out + [b""]
