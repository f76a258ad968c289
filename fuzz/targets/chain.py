"""Offline chain tokens (verifier/tokens/chain.py, docs/tokens.md): the 107-byte token decoder, its
signature and window check, and the link check between two tokens. An input is one token, or two
split at fuzz.harness.SEP (the link check). Each is verified as it is, and again with its 43 signed
bytes signed by the trusted key, so mutated fields reach the checks behind the signature. The one
documented error is ChainTokenRefused (with a reason from chain.REASONS).
"""

from cryptography.hazmat.primitives.asymmetric import ec

from fuzz.harness import check, frames, join
from fuzz.world import DEVICE_ID, T0
from verifier.tokens import chain

ALLOWED = (chain.ChainTokenRefused,)
KID = bytes.fromhex("0a1b2c3d")
PRIVATE = ec.derive_private_key(0xC0FFEE1234, ec.SECP256R1())
KEYS = {KID: PRIVATE.public_key()}


def make(workdir):
    def one_input(data):
        msgs = frames(data, 2)
        for tok in msgs:
            for t in (tok, tok[:chain.SIGNED_LEN] + chain.es256_sign(PRIVATE, tok[:chain.SIGNED_LEN])
                      if len(tok) == chain.TOKEN_LEN else tok):
                try:
                    got = chain.verify_chain_token(t, KEYS, T0, 300)
                    check(got["nbf"] - 300 <= T0 <= got["exp"] + 300, "a token outside its window accepted")
                except chain.ChainTokenRefused as e:
                    check(e.reason in chain.REASONS, f"unknown reason {e.reason}")
        if len(msgs) == 2:
            chain.verify_chain_link(msgs[0], msgs[1])

    return one_input


def seeds(workdir):
    sign = chain.signer(PRIVATE)
    toks = chain.build_chain(KID, DEVICE_ID, "tenant-a", T0 - 86400, 86400, 86400, 0, 3, chain.ZERO_PREV, sign)
    return [toks[0], toks[1], join(toks[:2]), join([toks[1], toks[0]]), toks[2][:100]]
