# Runs first inside the MicroPython unix port that plays a board (tools/boards.py).
# It hides what the board's stock firmware lacks: JANUA_HIDE (JSON) lists modules whose import
# must fail and module attributes that must not exist. Then it runs argv[1] (a script) if given.
# This file is host tooling for the virtual board; it is never installed on a device.
import builtins
import os
import sys

try:
    import json as _json
    _HIDE = _json.loads(os.getenv("JANUA_HIDE") or "{}")
except Exception:  # a broken setting must not stop the board from booting
    _HIDE = {}
_MODS = _HIDE.get("modules", [])
_ATTRS = _HIDE.get("attrs", {})
_BOARD = os.getenv("JANUA_BOARD") or "unix"


class _Filtered:
    # A module seen through the board profile: hidden attributes raise AttributeError.
    def __init__(self, mod, hidden):
        self._mod = mod
        self._hidden = hidden

    def __getattr__(self, name):
        if name in self._hidden:
            raise AttributeError("'module' object has no attribute '%s' (not on %s)" % (name, _BOARD))
        return getattr(self._mod, name)


_real_import = builtins.__import__
_wrapped = {}


def _import(name, *args):
    if name in _MODS or name.split(".")[0] in _MODS:
        raise ImportError("no module named '%s' (not on %s)" % (name, _BOARD))
    mod = _real_import(name, *args)
    hidden = _ATTRS.get(name)
    if hidden and (len(args) < 4 or args[3] == 0):
        w = _wrapped.get(name)
        if w is None:
            w = _wrapped[name] = _Filtered(mod, hidden)
        return w
    return mod


if _MODS or _ATTRS:
    builtins.__import__ = _import

del _json
if len(sys.argv) > 1:
    _script = sys.argv[1]
    del sys.argv[0]
    # Run the script as __main__ would be: in a fresh globals dict.
    with open(_script) as _f:
        _src = _f.read()
    exec(compile(_src, _script, "exec"), {"__name__": "__main__", "__file__": _script})
