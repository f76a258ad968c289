"""verifier.x509.issue_per_s: device certificates (P-256 key pair + certificate signed by the tenant CA, as
POST /v1/devices/{id}/certificate makes them, without HTTP and storage) issued per second on one core.

The process is pinned to one CPU (os.sched_setaffinity) for the measurement, then unpinned. Reported beside
a reference measured in the same run: bare P-256 ECDSA signatures per second (`verifier.x509.ref_sign_per_s`),
so the ratio survives a noisy machine.
"""

import os
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from verifier.mqtt import x509 as vx

SECONDS = 3.0


def _rate(fn, seconds):
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(50):
            fn()
        n += 50
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n / dt


def run(results, say):
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(old)})
    try:
        now = int(time.time())
        ca, key = vx.create_ca("bench", now)
        ids = iter(range(1 << 62))
        issue = lambda: vx.issue_device(ca, key, format(next(ids), "016x"), "bench", now)
        issue()
        rate = _rate(issue, SECONDS)
        sign = lambda: key.sign(b"x" * 200, ec.ECDSA(hashes.SHA256()))
        ref = _rate(sign, 1.0)
    finally:
        os.sched_setaffinity(0, old)
    results["verifier.x509.issue_per_s"] = round(rate)
    results["verifier.x509.ref_sign_per_s"] = round(ref)
    say(f"x509: {rate:.0f} P-256 device certificates/s on one core (reference: {ref:.0f} ECDSA signatures/s)")
