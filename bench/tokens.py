"""Device tokens (issue #5): ES256 JWT issue and validate per second on one core, in process, with
the bare `cryptography` ES256 sign/verify rates measured in the same run as the reference; the size of
a real issued JWT, of one offline chain token, and of a CWT (COSE_Sign1, RFC 8392) of the same claims.

How: this process is pinned to one CPU (os.sched_setaffinity) for the timed loops, each loop runs
for DURATION_S and the best of ROUNDS rounds is kept. Issue = verifier.tokens.issue_device_token (claims,
JSON, base64url, ECDSA sign, the key's signed_until bookkeeping). Validate = verifier.tokens.
validate_device_token (parse, ES256 verify with the kid's key, claims, and the device row read from a
real SQLite file, as every bearer request does).
"""

import os
import tempfile
import time
from pathlib import Path

DURATION_S = 1.0
ROUNDS = 3
N_DEVICES = 1000


def _rate(fn, duration=DURATION_S):
    best = 0.0
    for _ in range(ROUNDS):
        n, t0 = 0, time.perf_counter()
        while True:
            for _ in range(50):
                fn()
            n += 50
            dt = time.perf_counter() - t0
            if dt >= duration:
                break
        best = max(best, n / dt)
    return round(best, 1)


def cwt_bytes(private_key, kid, claims):
    """A real COSE_Sign1 (tag 18) CWT of the same claims: protected {1: -7}, unprotected {4: kid},
    claims {2: sub, 6: iat, 4: exp, 9: scope, -65537: tid}; measured, and verified once."""
    import cbor2
    from verifier.tokens.chain import es256_sign, es256_verify
    payload = cbor2.dumps({2: claims["sub"], 6: claims["iat"], 4: claims["exp"], 9: claims["scp"],
                           -65537: claims["tid"]})
    protected = cbor2.dumps({1: -7})
    to_sign = cbor2.dumps(["Signature1", protected, b"", payload])
    sig = es256_sign(private_key, to_sign)
    if not es256_verify(private_key.public_key(), sig, to_sign):
        raise RuntimeError("CWT signature does not verify")
    return len(cbor2.dumps(cbor2.CBORTag(18, [protected, {4: kid}, payload, sig])))


def run(results, say):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from verifier.registry import core as registry
    from verifier.tokens import chain
    from verifier.tokens import core as tokens
    from verifier.appkeys import STORAGE
    from verifier.keys import Sealer
    from verifier.registry.model import Policy
    from verifier.store import SQLiteStorage

    before = os.sched_getaffinity(0)
    cpu = max(before)
    with tempfile.TemporaryDirectory() as d:
        st = SQLiteStorage(str(Path(d) / "bench.db"))
        sealer = Sealer(os.urandom(32))
        now = int(time.time())
        tenant = registry.create_tenant(st, "bench", now)
        out = registry.provision_bulk(st, sealer, tenant["id"], [{"serial_number": f"B{i}"} for i in range(N_DEVICES)],
                                      now)
        ids = [bytes.fromhex(r["device_id"]) for r in out["results"]]
        for did in ids:
            st.update_device(tenant["id"], did, {"status": "active"})
        keys = tokens.TokenKeys(st, sealer)
        keys.load(now)
        app = {STORAGE: st, tokens.TOKEN_KEYS: keys}
        policy = Policy()
        devs = [st.get_device(did) for did in ids]
        toks = [tokens.issue_device_token(keys, dev, policy, now)[0] for dev in devs]
        key = keys.active(now)
        data = toks[0].rsplit(".", 1)[0].encode()
        sig = key.private.sign(data, ec.ECDSA(hashes.SHA256()))
        it = [0]

        def issue():
            it[0] += 1
            tokens.issue_device_token(keys, devs[it[0] % N_DEVICES], policy, now)

        def validate():
            it[0] += 1
            tokens.validate_device_token(app, toks[it[0] % N_DEVICES], now)

        try:
            os.sched_setaffinity(0, {cpu})
            results["verifier.token.issue_per_s"] = _rate(issue)
            results["verifier.token.verify_per_s"] = _rate(validate)
            results["verifier.limit.es256_sign_per_s"] = _rate(
                lambda: key.private.sign(data, ec.ECDSA(hashes.SHA256())))
            results["verifier.limit.es256_verify_per_s"] = _rate(
                lambda: key.public.verify(sig, data, ec.ECDSA(hashes.SHA256())))
        finally:
            os.sched_setaffinity(0, before)
        claims = tokens.verify_jwt(toks[0], keys.trusted(now), now)
        results["device.token.bytes"] = len(toks[0])
        results["device.offline.token_bytes"] = chain.TOKEN_LEN
        results["verifier.token.cwt_bytes"] = cwt_bytes(key.private, key.kid_bytes, claims)
        st.close()
    results["verifier.token.issue_ratio_to_sign"] = round(
        results["verifier.token.issue_per_s"] / results["verifier.limit.es256_sign_per_s"], 3)
    results["verifier.token.verify_ratio_to_verify"] = round(
        results["verifier.token.verify_per_s"] / results["verifier.limit.es256_verify_per_s"], 3)
    say(f"tokens (CPU {cpu}): issue {results['verifier.token.issue_per_s']}/s "
        f"(bare ES256 sign {results['verifier.limit.es256_sign_per_s']}/s), validate "
        f"{results['verifier.token.verify_per_s']}/s (bare verify {results['verifier.limit.es256_verify_per_s']}/s); "
        f"JWT {results['device.token.bytes']} B, CWT {results['verifier.token.cwt_bytes']} B, chain token 107 B")
