# The shim of the emulated boards (the esp32 and rp2040 profiles on the virtual board, and scripts on
# the emulated flash chip): boards/shim.py's hiding and boot, plus the emulated hardware first. With
# JANUA_VBOARD_FLASH set it boots boards/vboard/vb_board.py (the flash chip, the board modules --
# machine, network, esp32, rp2 -- that its import hook returns in place of the unix port's, LittleFS
# on the flash mounted as the working directory; sys and os seen as the board shows them). A script
# runs once this function's code is freed. tools/boards.py picks this file when a flash is given;
# boards/shim.py stays what runs everything else, unchanged, so that no other run's heap moves.
#
# On the virtual board (tools/vboard.py, JANUA_VBOARD_BOOT set) it then boots like a board: it runs
# boot.py and, when JANUA_VBOARD_BOOT is "main", main.py from the working directory (the flash) in
# the REPL's globals, prints their tracebacks (Ctrl-C included) and writes a marker that tells the
# supervisor the boot scripts are done; the interpreter's REPL (-i) follows.
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

    src = None
    if os.getenv("JANUA_VBOARD_FLASH"):
        # The emulated hardware (boards/vboard/vb_board.py, compiled to .mpy by tools/boards.py), with
        # its own import hook: the hiding above, the board's modules, sys and os as the board has them.
        if len(sys.argv) > 1:
            with open(sys.argv[1]) as f:   # now: the flash may be mounted over the host's "/"
                src = f.read()
        import gc
        gc.collect()
        base = gc.mem_alloc()
        # The board's free heap, held at the bottom of the heap while the emulation loads above it
        # (boards/vboard/vb_board.py boot() frees it): JANUA_VBOARD_HEAP is the profile's heap.
        # (61440: room for the emulation to load above it, the 64 KiB allowance less 4 KiB)
        n = min(int(os.getenv("JANUA_VBOARD_HEAP") or 0) - base, gc.mem_free() - 61440)
        hold = None
        while hold is None and n > 4096:
            try:
                hold = bytearray(n - 64)
            except MemoryError:
                n -= 4096
        sys.path[0] = os.getenv("JANUA_VBOARD_EMU") or ""   # in place of this file's directory ('' after boot)
        held = [hold]
        hold = None
        try:
            hook, settle = real_import("vb_board").boot(real_import, os.getenv, os.system, base, hide, board, held)
            settle()   # now that boot()'s own garbage is garbage: the ballast, then the hold let go
        except KeyboardInterrupt:
            # A Ctrl-C (mpremote's, say) while the emulated hardware boots: it is half up, so on the
            # virtual board the board resets (the supervisor restarts it) rather than reach a REPL
            # without its boot mark, which would leave the port silent.
            if not os.getenv("JANUA_VBOARD_BOOT"):
                raise
            sys.stdout.write("%s1\x07" % (os.getenv("JANUA_VBOARD_EXIT") or ""))
            return
        builtins.__import__ = hook
    elif mods or attrs:
        builtins.__import__ = _import

    if len(sys.argv) > 1:
        script = sys.argv[1]
        del sys.argv[0]
        if src is None:
            with open(script) as f:
                src = f.read()
        return compile(src, script, "exec"), script   # run below, once this function's code is freed

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


_janua_code = _janua_shim(globals())
del _janua_shim
if _janua_code:
    # A script runs as __main__ would, in a fresh globals dict; the shim's function (its code on the
    # heap) is gone by now, so the script gets the heap a board's main.py would.
    _janua_code = exec(_janua_code[0], {"__name__": "__main__", "__file__": _janua_code[1]})
del _janua_code
