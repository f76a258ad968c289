"""What this firmware can do, probed at run time: janua.probe() returns it as a dict.

Each probe imports or calls the feature and records the outcome; nothing is assumed from the
port's name. Used by diag and by the host tools to choose a protocol. It changes nothing.
"""

import gc
import sys


def _tls(out):
    try:
        import tls
    except ImportError:
        out["tls"] = False
        return
    out["tls"] = True
    out["dtls"] = [n for n in ("PROTOCOL_DTLS_CLIENT", "PROTOCOL_DTLS_SERVER") if hasattr(tls, n)]
    try:
        ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    except MemoryError:
        # A fragmented heap (e.g. right after an Ed25519 check) must not make probing fail:
        # report what could not be probed and go on.
        out["tls_psk"] = out["ciphers"] = None
        return
    except (AttributeError, OSError, ValueError):
        return
    out["tls_psk"] = [a for a in ("psk_identity", "psk_key", "server_psk_keys") if hasattr(ctx, a)]
    try:
        out["ciphers"] = list(ctx.get_ciphers())
    except (AttributeError, OSError, MemoryError):
        out["ciphers"] = None


def _hashes(out):
    try:
        import hashlib
    except ImportError:
        out["hashlib"] = []
        return
    out["hashlib"] = [n for n in ("md5", "sha1", "sha256", "sha512") if hasattr(hashlib, n)]
    h = hashlib.sha256()
    out["hash_copy"] = hasattr(h, "copy")


def _aes(out):
    modes = []
    try:
        from cryptolib import aes
    except ImportError:
        out["cryptolib"] = modes
        return
    for name, mode in (("ECB", 1), ("CBC", 2), ("CTR", 6)):
        try:
            if mode == 1:
                aes(bytes(16), mode)
            else:
                aes(bytes(16), mode, bytes(16))
            modes.append(name)
        except (ValueError, OSError):
            pass
    out["cryptolib"] = modes


def probe():
    out = {}
    _tls(out)
    _hashes(out)
    _aes(out)
    try:
        import os
        os.urandom(4)
        out["urandom"] = True
    except (ImportError, AttributeError, OSError):
        out["urandom"] = False
    try:
        import hmac  # noqa: F401  (absent on stock firmware)
        out["hmac_module"] = True
    except ImportError:
        out["hmac_module"] = False
    gc.collect()
    out["mem_free"] = gc.mem_free()
    v = sys.implementation.version
    out["micropython"] = "%d.%d.%d" % (v[0], v[1], v[2])
    out["platform"] = sys.platform
    try:
        import janua_hal
        out["board"] = janua_hal.board()
    except ImportError:
        out["board"] = None
    return out
