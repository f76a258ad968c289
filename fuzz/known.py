"""Crashes the fuzzers find that are open defects of issue #10 being fixed on other branches. The
short run in `make test` (tests/fuzz/test_fuzz_short.py, JANUA_FUZZ_KNOWN=tolerate) counts an input
that fails this way as `known` and goes on, so it does not depend on those fixes landing first; the
long run (`make fuzz`) treats them as crashes like any other, so it finds them while they are
unfixed. Once a fix is merged its entry matches nothing and should be deleted.

Each entry: (exception class name, path of a traceback frame in this repository, function of that
frame, text the message starts with or ""), and the issue item it belongs to.
"""

import os
import traceback

KNOWN = (
    (("UnicodeDecodeError", "verifier/dtls/coap.py", "handle", ""),
     "issue #10: CoAP Uri-Path (or another string option) that is not UTF-8"),
    (("AttributeError", "verifier/ota.py", "check_manifest", ""),
     "issue #10: OTA manifest `rollout` that is not an object"),
    (("Invariant", "fuzz/targets/ota.py", "upload", "manifest accepted with a non-integer"),
     "issue #10: OTA manifest field types (a float size is accepted)"),
    (("ProgrammingError", "verifier/ota.py", "store_release", ""),
     "issue #10: OTA manifest field types (a `name` that is not a string reaches SQLite)"),
    (("Invariant", "fuzz/targets/http.py", "one_input", "POST /v1/releases answered 500"),
     "issue #10: malformed multipart on POST /v1/releases"),
    (("UnicodeDecodeError", "tools/provision.py", "read_rows", ""),
     "issue #10: `janua provision --bulk` on a file that is not UTF-8"),
)


def tolerated():
    return os.environ.get("JANUA_FUZZ_KNOWN") == "tolerate"


def match(exc):
    """The KNOWN entry's description that `exc` matches, or None."""
    frames = [(f.f_code.co_filename.replace(os.sep, "/"), f.f_code.co_name)
              for f, _ in traceback.walk_tb(exc.__traceback__)]      # no source lines read: cheap
    for (cls, path, func, prefix), what in KNOWN:
        if type(exc).__name__ == cls and str(exc).startswith(prefix) and \
                any(fn.endswith(path) and name == func for fn, name in frames):
            return what
    return None
