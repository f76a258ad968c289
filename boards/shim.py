# Runs first inside the MicroPython unix port that plays a board (tools/boards.py).
# It hides what the board's stock firmware lacks: JANUA_HIDE (JSON) lists modules whose import
# must fail and module attributes that must not exist. Then it runs argv[1] (a script) if given.
#
# On the virtual board (tools/vboard.py, JANUA_VBOARD_BOOT set) it then boots like a board: it runs
# boot.py and, when JANUA_VBOARD_BOOT is "main", main.py from the working directory (the flash) in
# the REPL's globals, prints their tracebacks (Ctrl-C included) and writes a marker that tells the
# supervisor the boot scripts are done; the interpreter's REPL (-i) follows.
# Everything lives inside one function so that the REPL's globals stay as clean as a board's.
# This file is host tooling for the virtual board; it is never installed on a device.


def _janua_shim(g):
    import builtins
    import os
    import sys

    try:
        import json
        hide = json.loads(os.getenv("JANUA_HIDE") or "{}")
    except Exception:  # a broken setting must not stop the board from booting
        hide = {}
    mods = hide.get("modules", [])
    attrs = hide.get("attrs", {})
    board = os.getenv("JANUA_BOARD") or "unix"

    class Filtered:
        # A module seen through the board profile: hidden attributes raise AttributeError.
        def __init__(self, mod, hidden):
            self._mod = mod
            self._hidden = hidden

        def __getattr__(self, name):
            if name in self._hidden:
                raise AttributeError("'module' object has no attribute '%s' (not on %s)" % (name, board))
            return getattr(self._mod, name)

    real_import = builtins.__import__
    wrapped = {}

    def _import(name, *args):
        if name in mods or name.split(".")[0] in mods:
            raise ImportError("no module named '%s' (not on %s)" % (name, board))
        mod = real_import(name, *args)
        hidden = attrs.get(name)
        if hidden and (len(args) < 4 or args[3] == 0):
            w = wrapped.get(name)
            if w is None:
                w = wrapped[name] = Filtered(mod, hidden)
            return w
        return mod

    if mods or attrs:
        builtins.__import__ = _import

    if len(sys.argv) > 1:
        script = sys.argv[1]
        del sys.argv[0]
        # Run the script as __main__ would be: in a fresh globals dict.
        with open(script) as f:
            src = f.read()
        exec(compile(src, script, "exec"), {"__name__": "__main__", "__file__": script})
        return

    boot = os.getenv("JANUA_VBOARD_BOOT")
    if not boot:
        return
    names = ("boot.py", "main.py") if boot == "main" else ("boot.py",)
    for name in names:
        try:
            with open(name) as f:
                src = f.read()
        except OSError:
            continue
        try:
            exec(compile(src, name, "exec"), g)
        except SystemExit as e:
            # sys.exit() in a boot script resets the board. The interpreter runs with -i and would
            # fall into its REPL, so tell the supervisor, which ends us and resets the board.
            code = e.args[0] if e.args and type(e.args[0]) is int else (0 if not e.args else 1)
            sys.stdout.write("%s%d\x07" % (os.getenv("JANUA_VBOARD_EXIT") or "", code))
            return
        except BaseException as e:  # like a board: print the traceback, go on to the REPL
            sys.print_exception(e)
    sys.stdout.write(os.getenv("JANUA_VBOARD_MARK") or "")


_janua_shim(globals())
del _janua_shim
