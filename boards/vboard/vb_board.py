# Boots the virtual board's hardware before any board code runs (MicroPython code, called by
# boards/shim.py; host tooling, never installed on a device):
#
# 1. the flash chip (vb_flashchip.FlashChip over the host image JANUA_VBOARD_FLASH);
# 2. the emulated board modules the profile lists (vb_machine.py as `machine`, vb_network.py as
#    `network`, vb_esp32.py as `esp32`, vb_rp2.py as `rp2`), each given the context below through
#    its init(ctx); a module's optional bootloader(ctx) runs next (the esp32's picks the OTA slot);
# 3. the filesystem: the profile's filesystem partition as a LittleFS2 block device, mounted at
#    JANUA_VBOARD_MOUNT ("/" on the virtual board, so nothing of the host is visible) and made the
#    working directory. A blank or corrupt partition is formatted first, as the stock ESP32 and
#    Pico W firmware do at boot when the mount fails.
#
# setup() returns {name: module} for the shim's import hook and the sys/os attributes the board
# reports. The host paths it was loaded from are gone from sys.path when it returns.


class Context:
    # What the emulated modules share: the chip, the profile's "vboard" section (spec), the
    # supervisor's settings (env: the JANUA_VBOARD_* variables), die(kind) to end this interpreter
    # at once (kind: "hard", "soft", "wdt", "deepsleep", "cut"), and the unix port's own machine
    # module (mem32, idle).
    def __init__(self, chip, spec, env, die, real_machine):
        self.chip = chip
        self.spec = spec
        self.env = env
        self.die = die
        self.real_machine = real_machine
        self.modules = {}
        self.uname = None           # os.uname: set by a module that knows the running firmware's
                                    # version, else the profile's


class Uname:
    # os.uname()'s result: fields by name and by index, as MicroPython's uname_result.
    _FIELDS = ("sysname", "nodename", "release", "version", "machine")

    def __init__(self, values):
        self._v = tuple(values)
        for k, v in zip(self._FIELDS, self._v):
            setattr(self, k, v)

    def __getitem__(self, i):
        return self._v[i]

    def __len__(self):
        return 5

    def __repr__(self):
        return "(" + ", ".join("%s='%s'" % kv for kv in zip(self._FIELDS, self._v)) + ")"


def _partition(spec, label):
    for p in spec.get("partitions", ()):
        if p[0] == label:
            return p[3], p[4]
    return None


def _mount(ctx, vfs, os):
    from vb_flashchip import Window
    spec = ctx.spec
    fs = spec["fs"]
    off, size = _partition(spec, fs) if isinstance(fs, str) else fs
    bdev = Window(ctx.chip, off, size)
    try:
        lfs = vfs.VfsLfs2(bdev)
    except OSError:
        vfs.VfsLfs2.mkfs(bdev)
        lfs = vfs.VfsLfs2(bdev)
        ctx.formatted = True
    point = ctx.env.get("JANUA_VBOARD_MOUNT") or "/"
    if point == "/":
        vfs.umount("/")
    vfs.mount(lfs, point)
    os.chdir(point)
    return bdev


def setup(env, spec, die, real_import):
    import os
    import sys
    import vfs
    from vb_flashchip import FlashChip
    cut = env.get("JANUA_VBOARD_CUT") or ""
    n, _, how = cut.partition(":")
    chip = FlashChip(env["JANUA_VBOARD_FLASH"], spec["flash_bytes"], env.get("JANUA_VBOARD_WEAR"),
                     cut=int(n) if n else 0, torn=how == "torn", die=lambda: die("cut"))
    ctx = Context(chip, spec, env, die, real_import("machine"))
    ctx.formatted = False
    ctx.Uname = Uname
    for name in spec.get("modules", ()):
        mod = real_import("vb_" + name)
        mod.init(ctx)
        ctx.modules[name] = mod
    for mod in ctx.modules.values():
        boot = getattr(mod, "bootloader", None)
        if boot is not None:
            boot(ctx)
    if ctx.uname is None and spec.get("uname"):
        u = Uname(spec["uname"])
        ctx.uname = lambda: u
    ctx.fs = _mount(ctx, vfs, os)
    here = env.get("JANUA_VBOARD_EMU")
    while here in sys.path:
        sys.path[sys.path.index(here)] = ""   # a board's sys.path starts with ''
    while sys.path.count("") > 1:
        sys.path.remove("")
    return ctx


_ENV = ("JANUA_VBOARD_FLASH", "JANUA_VBOARD_WEAR", "JANUA_VBOARD_CUT", "JANUA_VBOARD_MOUNT", "JANUA_VBOARD_EMU",
        "JANUA_VBOARD_RESET", "JANUA_VBOARD_MPY", "JANUA_VBOARD_WIFI", "JANUA_VBOARD_UID", "JANUA_VBOARD_SOFT")


class Impl:
    # sys.implementation as the board's firmware reports it.
    def __init__(self, real, machine, mpy):
        self.name = real.name
        self.version = real.version
        self._machine = machine
        self._mpy = mpy


class Filtered:
    # A module seen through the board profile: hidden attributes raise AttributeError, and `extra`
    # ones (what the board reports differently from the unix port: sys.platform, os.uname) come first.
    def __init__(self, mod, hidden, extra, board):
        self._mod = mod
        self._hidden = hidden
        self._extra = extra
        self._board = board

    def __getattr__(self, name):
        if name in self._extra:
            return self._extra[name]
        if name in self._hidden:
            raise AttributeError("'module' object has no attribute '%s' (not on %s)" % (name, self._board))
        return getattr(self._mod, name)


def _hook(real_import, emulated, extras, hide, board, keep):
    mods = hide.get("modules", [])
    attrs = hide.get("attrs", {})
    wrapped = {None: keep}

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
                w = wrapped[name] = Filtered(mod, hidden or (), extra or {}, board)
            return w
        return mod
    return _import


def boot(real_import, getenv, system, base, hide, board, held):
    """Called by boards/shim.py: the emulated hardware up, then (the import hook that gives board code
    the emulated modules, the profile's hiding and sys/os as the board reports them; settle(), which
    the shim calls once this function has returned). `base`:
    the heap in use before this module was loaded; `held`: [the shim's hold on the board's heap]."""
    import gc
    import json
    import sys
    spec = json.loads(getenv("JANUA_VBOARD_SPEC") or "{}")
    env = {}
    for k in _ENV:
        v = getenv(k)
        if v is not None:
            env[k] = v
    mark = getenv("JANUA_VBOARD_RESETMARK") or ""

    def die(kind):
        # The end of this interpreter, now: tell the supervisor why (the next boot's reset cause, or
        # a power cut), then SIGKILL ourselves so that nothing more runs and nothing is flushed.
        sys.stdout.write("%s%s\x07" % (mark, kind))
        system("kill -9 $PPID")
        while True:
            pass

    # What the emulation holds on the heap is not the board's: a board keeps these in ROM. The
    # interpreter got `heap_allowance` more bytes. The shim's hold, as large as the free heap an
    # interpreter with the profile's heap has at that point, fills the bottom of the heap; the
    # emulation loaded above it; the ballast takes whatever is left free above (the emulation's
    # garbage holes included); then the hold is freed: the board code gets the profile's free heap,
    # in one piece at the bottom.
    allowance = spec.get("heap_allowance", 0)
    ctx = setup(env, spec, die, real_import)
    for k in list(sys.modules):
        if k.startswith("vb_"):
            del sys.modules[k]   # the emulation is reached only through the board's module names
    mpy = int(env["JANUA_VBOARD_MPY"]) if env.get("JANUA_VBOARD_MPY") else sys.implementation._mpy
    extras = {"sys": {"platform": spec.get("platform", sys.platform),
                      "implementation": Impl(sys.implementation, spec.get("machine", ""), mpy)}}
    if ctx.uname is not None:
        extras["os"] = {"uname": ctx.uname}
    gc.collect()
    used = gc.mem_alloc() - (len(held[0]) if held[0] is not None else 0) - base
    if used > allowance:
        sys.stdout.write("janua vboard: the emulation holds %d bytes of heap, more than its allowance of %d\n"
                         % (used, allowance))

    ctx.ballast = ballast = [None] * 512   # allocated now: the heap is full while it fills
    ctx.trim = None

    def settle():
        gc.collect()
        size = 16384
        i = 0
        while size >= 64 and i < len(ballast):   # every free block of the top region, largest first
            try:
                ballast[i] = bytearray(size - 48)
                i += 1
            except MemoryError:
                size //= 2
        held[0] = None                  # the board's heap is free
        gc.collect()
        # the holes below the hold (the shim's garbage) came on top of it: as much again held back,
        # from the start of the board's region, so that the free heap is the profile's
        excess = gc.mem_free() - (spec.get("heap_bytes", 0) - base)
        if excess > 64:
            ctx.trim = bytearray(excess - 48)
    return _hook(real_import, ctx.modules, extras, hide, board, ctx), settle
