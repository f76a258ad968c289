# Runs first inside the MicroPython unix port that plays a board (tools/boards.py).
# It hides what the board's stock firmware lacks: JANUA_HIDE (JSON) lists modules whose import
# must fail and module attributes that must not exist. Then it runs argv[1] (a script) if given.
#
# With JANUA_VBOARD_FLASH set (the esp32 and rp2040 profiles on the virtual board, and scripts that
# ask for the emulated flash), it first boots the emulated hardware (boards/vboard/vb_board.py): the
# flash chip, the board modules (machine, network, esp32, rp2) that the import hook below returns
# in place of the unix port's, and LittleFS on the flash mounted as the working directory. sys and
# os are then seen as the board shows them (sys.platform, sys.implementation._machine and _mpy,
# os.uname()). JANUA_VBOARD_SPEC is the profile's "vboard" section (JSON).
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
        # A module seen through the board profile: hidden attributes raise AttributeError, and
        # `extra` ones (what the board reports differently from the unix port) come first.
        def __init__(self, mod, hidden, extra=None):
            self._mod = mod
            self._hidden = hidden
            self._extra = extra or {}

        def __getattr__(self, name):
            if name in self._extra:
                return self._extra[name]
            if name in self._hidden:
                raise AttributeError("'module' object has no attribute '%s' (not on %s)" % (name, board))
            return getattr(self._mod, name)

    real_import = builtins.__import__
    wrapped = {}
    emulated = {}
    extras = {}

    script = src = None
    if len(sys.argv) > 1:
        script = sys.argv[1]
        del sys.argv[0]
        with open(script) as f:   # read now: the flash may be mounted over the host's "/" below
            src = f.read()

    flash = os.getenv("JANUA_VBOARD_FLASH")
    if flash:
        import gc
        gc.collect()
        base = gc.mem_alloc()
        spec = json.loads(os.getenv("JANUA_VBOARD_SPEC") or "{}")
        env = {}
        for k in ("JANUA_VBOARD_FLASH", "JANUA_VBOARD_WEAR", "JANUA_VBOARD_CUT", "JANUA_VBOARD_MOUNT",
                  "JANUA_VBOARD_EMU", "JANUA_VBOARD_RESET", "JANUA_VBOARD_MPY", "JANUA_VBOARD_WIFI",
                  "JANUA_VBOARD_UID", "JANUA_VBOARD_SOFT"):
            v = os.getenv(k)
            if v is not None:
                env[k] = v
        system = os.system
        mark = os.getenv("JANUA_VBOARD_RESETMARK") or ""

        def die(kind):
            # The end of this interpreter, now: tell the supervisor why (the next boot's reset cause,
            # or a power cut), then SIGKILL ourselves so that nothing more runs and nothing is flushed.
            sys.stdout.write("%s%s\x07" % (mark, kind))
            system("kill -9 $PPID")
            while True:
                pass

        sys.path.insert(0, env.get("JANUA_VBOARD_EMU") or "")
        ctx = real_import("vb_board").setup(env, spec, die, real_import)
        for k in list(sys.modules):
            if k.startswith("vb_"):
                del sys.modules[k]   # the emulation is reached only through the board's module names
        emulated = ctx.modules

        class Impl:
            # sys.implementation as the board's firmware reports it.
            def __init__(self, real, machine, mpy):
                self.name = real.name
                self.version = real.version
                self._machine = machine
                self._mpy = mpy

        mpy = int(env["JANUA_VBOARD_MPY"]) if env.get("JANUA_VBOARD_MPY") else sys.implementation._mpy
        extras["sys"] = {"platform": spec.get("platform", sys.platform),
                         "implementation": Impl(sys.implementation, spec.get("machine", ""), mpy)}
        if ctx.uname is not None:
            extras["os"] = {"uname": ctx.uname}
        # What the emulation holds on the heap is not the board's: a board keeps these in ROM. The
        # interpreter got `heap_allowance` more bytes; what the emulation does not use is held back
        # here (the ballast), sized so that the free heap is what an interpreter with the profile's
        # heap has at this point.
        gc.collect()
        used = gc.mem_alloc() - base
        # the ballast leaves exactly the free heap an interpreter of the profile's heap has here
        pad = gc.mem_free() - (spec.get("heap_bytes", 0) - base) - 16
        if used > spec.get("heap_allowance", 0):
            sys.stdout.write("janua vboard: the emulation holds %d bytes of heap, more than its allowance of %d\n"
                             % (used, spec.get("heap_allowance", 0)))
        elif pad > 0:
            ctx.ballast = bytearray(pad)
        wrapped[None] = ctx   # kept alive by the import hook, which holds `wrapped`

    def _import(name, *args):
        mod = emulated.get(name)
        if mod is None:
            if name in mods or name.split(".")[0] in mods:
                raise ImportError("no module named '%s' (not on %s)" % (name, board))
            mod = real_import(name, *args)
        hidden = attrs.get(name)
        extra = extras.get(name)
        if (hidden or extra) and (len(args) < 4 or args[3] == 0):
            w = wrapped.get(name)
            if w is None:
                w = wrapped[name] = Filtered(mod, hidden or (), extra)
            return w
        return mod

    if mods or attrs or emulated or extras:
        builtins.__import__ = _import

    if script is not None:
        # Run the script as __main__ would be: in a fresh globals dict.
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
