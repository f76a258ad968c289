"""Gateway TPM quotes (issue #12): quotes appraised per second on one core, in process, on the
recorded swtpm quote of tests/gateway/vectors.json (RSA 2048 AK, RSASSA-SHA256, PCRs 0-7).

One appraisal = what POST /v1/gateways/{id}/quote computes apart from storage and HTTP: parse the
stored EK and AK public areas, the AK's qualified name, verify_quote (TPMS_ATTEST, TPMT_SIGNATURE,
RSA verify, signer, selection, PCR digest), compare with the model's reference, re-verify the EK
certificate chain (EK certificate -> intermediate -> root, two RSA verifies), appraise. The reference
in the same run is one bare RSA-2048 PKCS#1 v1.5 SHA-256 verify with `cryptography`, so the ratio
(appraisals per bare verify) survives another machine. Five alternating pairs of DURATION_S each,
this process pinned to one CPU; the rate is the median, the ratio's median and minimum are reported.
Also verifier.tpm.quote_only_per_s: verify_quote alone (no chain).
"""

import json
import os
import statistics
import time
from pathlib import Path

DURATION_S = 1.0
PAIRS = 5


def _rate(fn, duration=DURATION_S):
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(20):
            fn()
        n += 20
        dt = time.perf_counter() - t0
        if dt >= duration:
            return n / dt


def run(results, say):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from verifier.gateway import core

    v = json.loads((Path(__file__).resolve().parents[1] / "tests" / "gateway" / "vectors.json").read_text())
    rsa = v["rsa"]
    ek_raw, ak_raw = bytes.fromhex(v["ek_public"]), bytes.fromhex(rsa["ak_public"])
    attest, sig, pcrs = (bytes.fromhex(rsa[k]) for k in ("quote", "signature", "pcrs"))
    cert_raw, inter_raw, root_raw = (bytes.fromhex(v[k]) for k in ("ek_cert", "ek_issuer", "ek_root"))
    reference = {i: pcrs[i * 32:(i + 1) * 32] for i in range(8)}
    now = int(time.time())

    def appraisal():
        ek, ak = core.decode_public(ek_raw), core.decode_public(ak_raw)
        q, failure = core.verify_quote(ak, attest, sig, pcrs, core.qualified_name_under_ek(ek, ak))
        mismatched = core.compare_pcrs(core.pcr_values_of(pcrs), reference)
        ok = core.verify_ek_chain(core.load_cert(cert_raw), [core.load_cert(inter_raw)], [core.load_cert(root_raw)],
                                  ek, now) is None
        status, _, _ = core.appraise(failure, mismatched, True, ok)
        if status != "affirming":
            raise RuntimeError(f"the recorded quote appraised {status}")

    ak = core.decode_public(ak_raw)
    ek = core.decode_public(ek_raw)
    signer = core.qualified_name_under_ek(ek, ak)
    raw_sig = core.decode_signature(sig)[2]

    def quote_only():
        if core.verify_quote(ak, attest, sig, pcrs, signer)[1] is not None:
            raise RuntimeError("the recorded quote does not verify")

    def bare_verify():
        ak.key.verify(raw_sig, attest, padding.PKCS1v15(), hashes.SHA256())

    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {sorted(old)[0]})
    try:
        rates, refs, only = [], [], []
        for _ in range(PAIRS):
            rates.append(_rate(appraisal))
            refs.append(_rate(bare_verify))
            only.append(_rate(quote_only))
    finally:
        os.sched_setaffinity(0, old)
    ratios = [a / b for a, b in zip(rates, refs)]
    results["verifier.tpm.quote_verify_per_s"] = round(statistics.median(rates), 1)
    results["verifier.tpm.quote_only_per_s"] = round(statistics.median(only), 1)
    results["verifier.limit.rsa2048_verify_per_s"] = round(statistics.median(refs), 1)
    results["verifier.tpm.quote_verify_ratio_median"] = round(statistics.median(ratios), 4)
    results["verifier.tpm.quote_verify_ratio_min"] = round(min(ratios), 4)
    say(f"tpm: {results['verifier.tpm.quote_verify_per_s']} appraisals/s, quote alone "
        f"{results['verifier.tpm.quote_only_per_s']}/s, bare RSA verify {results['verifier.limit.rsa2048_verify_per_s']}/s "
        f"(ratio median {results['verifier.tpm.quote_verify_ratio_median']}, min {results['verifier.tpm.quote_verify_ratio_min']})")


if __name__ == "__main__":
    out = {}
    run(out, print)
    print(json.dumps(out, indent=1, sort_keys=True))
