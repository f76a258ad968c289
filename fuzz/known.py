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

KNOWN = ()       # empty: the defects of issue #10 it held are fixed and merged (each has a named regression test)


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
