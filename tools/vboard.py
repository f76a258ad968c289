"""`janua vboard`: a virtual board, the MicroPython unix port behind a pseudo-terminal.

A supervisor (a thread in this process) owns the pty that clients open (mpremote, pyserial,
`janua console`) and runs the interpreter as a child on a second pty, copying bytes both ways. It
adds what the unix port lacks to look like a board on a USB serial port:

- Soft reset. Ctrl-D at the REPL (or sys.exit()) ends the unix port with status 0; the supervisor
  prints "MPY: soft reboot", starts a new interpreter and, if the old one was in the raw REPL, puts
  the new one back into it (a board keeps raw-REPL mode across a soft reset, and mpremote relies on
  it). Any other exit (non-zero status, a signal) is a hard reset: the board boots from scratch.
- Boot. Each interpreter runs boot.py and, in the friendly REPL, main.py from the board's filesystem
  (its working directory) through boards/shim.py, then the REPL. The esp32 and rp2040 boards keep
  that filesystem on an emulated flash chip (flash.bin, wear.bin and uid.bin in the flash directory,
  LittleFS2 mounted at "/"; tools/vboard_flash.py) and report their profile's sys.platform, so
  `janua flash` installs their own hal; the unix profile's filesystem is the flash directory itself.
- Ctrl-C. The unix port turns SIGINT into KeyboardInterrupt only while code runs; a pty without a
  controlling process cannot send it, so the supervisor does: a 0x03 byte while the child's
  terminal is not in the REPL's raw mode becomes SIGINT, otherwise it is passed on as a byte.
- Power. kill() is a power cut (SIGKILL, nothing flushed); restart() powers on again.

What it deliberately does not do: translate line endings (the unix port prints "\\n" where a board
prints "\\r\\n"; tools accept both), emulate baud rates, DTR/RTS resets or USB re-enumeration.
"""

import os
import select
import signal
import subprocess
import sys
import termios
import threading
import time
import tty
from pathlib import Path

from tools.boards import BOARD_NAMES, load_profile, micropython_cmd
from tools.errors import CLIError
from tools.vboard_flash import FlashImage

from tools.vboard_serial import BOOT_MARK, EXIT_MARK, MAX_INQ, SOFT_REBOOT, SerialBytes


# The emulated board's reasons to end an interpreter (RESET_MARK kinds), as the supervisor prints them.
_WHY = {"hard": "machine.reset()", "wdt": "watchdog timeout", "deepsleep": "wake from deep sleep"}


def default_flash_dir(board):
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "janua" / "vboard" / board


def _set_raw(fd):
    tty.setraw(fd, termios.TCSANOW)


def _child_termios(fd):
    # The child's "original" terminal mode, which the unix port restores while code runs: no
    # echo, no line editing, no output translation, no flow control; ISIG on only as the marker
    # "code is running" (its signal characters are disabled, the supervisor sends SIGINT itself).
    a = termios.tcgetattr(fd)
    a[0] = 0
    a[1] = 0
    a[3] = termios.ISIG
    cc = a[6]
    for i in (termios.VINTR, termios.VQUIT, termios.VSUSP):
        cc[i] = b"\x00"
    cc[termios.VMIN] = 1
    cc[termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, a)


class VirtualBoard(SerialBytes):
    """One virtual board: `start()` returns its serial port; `stop()` tears it down.

    `kill()` cuts the power at once (the interpreter gets SIGKILL and stays off); `restart()`
    powers it on again (killing it first if it is running): a hard reset.
    """

    def __init__(self, board="esp32", flash_dir=None, link=None, log=None, mpy=None, wifi=None):
        if board not in BOARD_NAMES:
            raise CLIError(f"unknown board {board!r}", hint="choose one of: " + ", ".join(BOARD_NAMES))
        self.board = board
        self.profile = load_profile(board)
        self.flash_dir = Path(flash_dir) if flash_dir is not None else default_flash_dir(board)
        # esp32 and rp2040: an emulated flash chip in flash_dir, LittleFS mounted at "/"; the unix
        # profile keeps the plain unix port, its flash a host directory.
        self.flash = FlashImage(self.flash_dir, self.profile) if "vboard" in self.profile else None
        self.mpy = mpy          # sys.implementation._mpy to report instead of the interpreter's
        self.wifi = wifi        # the emulated access points (JSON text, boards/vboard/vb_network.py)
        self._cut = None        # a power cut armed for the next interpreter
        self._hw_reset = None   # the reset cause the next interpreter reports (None: power-on)
        self._reset_kind = None
        self._rhold = b""
        self.link = Path(link) if link is not None else None
        self.port = None
        self.boots = 0          # interpreters started so far
        self.resets = []        # ("soft" | "hard" | "power", exit status) per interpreter that ended
        self._log = log
        self._lock = threading.Lock()
        self._thread = None
        self._um = self._us = None
        self._wake_r = self._wake_w = None
        self._cmds = []
        self._child = None
        self._cm = None
        self._power = False
        self._stopping = False
        self._changed = threading.Condition(self._lock)

    # -- public API ---------------------------------------------------------------------------

    @property
    def root(self):
        """The board's filesystem: a tools.vboard_flash.FlashPath on the emulated flash, or the
        flash directory (a pathlib.Path) for the unix profile."""
        return self.flash.root if self.flash is not None else self.flash_dir

    def arm_cut(self, n, torn=False):
        """Cut the power at the n-th write operation (erase or program) of the flash chip by the
        next interpreter that starts (every mpremote command starts one with its soft reset). The
        board then stays off, with ("cut", status) in `resets`, until restart()."""
        if self.flash is None:
            raise CLIError("power cuts at block level need an emulated flash (the esp32 or rp2040 board)")
        self._cut = "%d%s" % (n, ":torn" if torn else "")

    def start(self):
        if self._thread is not None:
            raise CLIError("the virtual board is already running")
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        if self.flash is not None:
            self.flash.create()
        self._um, self._us = os.openpty()
        _set_raw(self._us)
        os.set_blocking(self._um, False)
        self.port = os.ttyname(self._us)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        if self.link is not None:
            self._make_link()
        self._power = True
        self._boot(soft=False, raw=False, note=None)
        self._thread = threading.Thread(target=self._loop, name=f"vboard-{self.board}", daemon=True)
        self._thread.start()
        return self.port

    def stop(self):
        if self._thread is None:
            return
        self._post("stop")
        self._thread.join(5)
        self._thread = None
        for fd in (self._um, self._us, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()

    def kill(self, timeout=5):
        """Power loss: SIGKILL the interpreter now; the board stays off until restart()."""
        with self._lock:
            self._power = False
            child = self._child
            if child is not None:
                child.kill()
        self._post("off")
        self._wait(lambda: self._child is None, timeout)

    def restart(self, timeout=5):
        """Hard reset / power on: kill the interpreter if it runs, boot a fresh one."""
        with self._lock:
            self._power = False
            if self._child is not None:
                self._child.kill()
        self._post("off")
        self._wait(lambda: self._child is None, timeout)
        boots = self.boots
        self._post("on")
        self._wait(lambda: self.boots > boots, timeout)

    @property
    def running(self):
        return self._child is not None

    @property
    def pid(self):
        child = self._child
        return child.pid if child is not None else None

    def wait_repl(self, timeout=5):
        """Wait until the interpreter waits for input at its REPL (boot scripts done)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            cm = self._cm
            if cm is not None and self._phase == "run":
                try:
                    if termios.tcgetattr(cm)[3] == 0:
                        return True
                except termios.error:
                    pass
            time.sleep(0.01)
        return False

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- supervisor ---------------------------------------------------------------------------

    def _say(self, msg):
        if self._log is not None:
            self._log(msg)

    def _post(self, cmd):
        with self._lock:
            self._cmds.append(cmd)
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _wait(self, pred, timeout):
        with self._changed:
            self._changed.wait_for(pred, timeout)

    def _make_link(self):
        if self.link.is_symlink():
            self.link.unlink()
        elif self.link.exists():
            raise CLIError(f"{self.link} exists and is not a symlink", hint="choose another --link path")
        self.link.parent.mkdir(parents=True, exist_ok=True)
        self.link.symlink_to(self.port)

    def _boot(self, soft, raw, note):
        """Start an interpreter. Called with the power on, from start() or the loop thread."""
        self._outq = bytearray()
        self._out_stalled_since = None
        if soft:
            self._emit(SOFT_REBOOT)
        elif note:
            self._emit(note)
        cut, self._cut = self._cut, None
        argv, env = micropython_cmd(self.board, interactive=True, flash=self.flash, cut=cut,
                                    reset=self._hw_reset, mpy=self.mpy, wifi=self.wifi)
        self._reset_kind = None
        self._rhold = b""
        env["JANUA_VBOARD_BOOT"] = "boot" if raw else "main"
        if soft:
            env["JANUA_VBOARD_SOFT"] = "1"   # a soft reset: the ROM and bootloader do not run again
        env["JANUA_VBOARD_MARK"] = BOOT_MARK
        env["JANUA_VBOARD_EXIT"] = EXIT_MARK
        self._exit_status = None
        cm, cs = os.openpty()
        _child_termios(cs)
        child = subprocess.Popen(argv, env=env, cwd=str(self.flash_dir), stdin=cs, stdout=cs, stderr=cs,
                                 close_fds=True, start_new_session=True)
        os.close(cs)
        os.set_blocking(cm, False)
        self._buf = b""            # child output held back while looking for a marker
        self._tail = b""           # last bytes forwarded, to find markers split across reads
        self._inq = bytearray()    # client input not yet written to the child
        self._phase = "boot"       # boot -> (rawsync ->) run
        self._raw = raw            # the REPL mode the interpreter is in (or heads for)
        self._sent_ctrl_a = False
        with self._changed:
            self._child = child
            self._cm = cm
            self.boots += 1
            self._changed.notify_all()
        self._say(f"boot #{self.boots} ({'soft' if soft else 'hard'}, {'raw' if raw else 'friendly'} REPL)")

    def _loop(self):
        while True:
            with self._lock:
                cmds, self._cmds = self._cmds, []
            for cmd in cmds:
                if cmd == "stop":
                    self._stopping = True
                    if self._child is not None:
                        self._child.kill()
                        self._reap(self._child.wait())
                    return
                if cmd == "on" and self._child is None:
                    with self._lock:
                        self._power = True
                    self._boot(soft=False, raw=False, note=None)
            cm = self._cm
            rlist = [self._wake_r]
            if len(self._inq) < MAX_INQ:
                rlist.append(self._um)
            if cm is not None and not self._outq:
                rlist.append(cm)
            wlist = []
            if self._outq:
                wlist.append(self._um)
            if cm is not None and self._inq and self._phase == "run":
                wlist.append(cm)
            busy = self._outq or self._phase == "rawsync" or (self._inq and self._phase == "run")
            try:
                r, w, _ = select.select(rlist, wlist, [], 0.01 if busy else 0.2)
            except (OSError, ValueError):
                return
            if self._wake_r in r:
                try:
                    os.read(self._wake_r, 4096)
                except BlockingIOError:
                    pass
            if self._um in w or self._outq:
                self._flush_out()
            if cm is not None and cm in r:
                try:
                    data = os.read(cm, 4096)
                except BlockingIOError:
                    data = None
                except OSError:
                    data = b""
                if data:
                    self._from_child(data)
                elif data == b"":
                    self._child_gone()
                    continue
            elif cm is not None and self._child.poll() is not None and not self._outq:
                # Exited without the pty reporting it yet (e.g. output already drained).
                self._drain_child()
                self._child_gone()
                continue
            if self._um in r:
                try:
                    data = os.read(self._um, 4096)
                except (BlockingIOError, OSError):
                    data = b""
                if data:
                    self._from_client(data)
            if self._phase == "rawsync" and not self._sent_ctrl_a and self._child_in_repl():
                self._write_child(b"\x01")
                self._sent_ctrl_a = True
            if self._inq and self._phase == "run":
                self._flush_in()

    def _drain_child(self):
        while True:
            try:
                data = os.read(self._cm, 4096)
            except OSError:
                return
            if not data:
                return
            self._from_child(data)

    def _child_in_repl(self):
        try:
            return termios.tcgetattr(self._cm)[3] == 0
        except termios.error:
            return False

    def _child_gone(self):
        child, cm = self._child, self._cm
        status = child.wait()
        if self._exit_status is not None:   # the boot scripts asked for a reset (EXIT_MARK)
            status, self._exit_status = self._exit_status, None
        kind, self._reset_kind = self._reset_kind, None
        os.close(cm)
        with self._lock:
            if kind == "cut":
                self._power = False
            power = self._power and not self._stopping
        raw = self._raw
        self._reap(status)
        if not power:
            self._hw_reset = None   # the next boot is a power-on
            self.resets.append(("cut" if kind == "cut" else "power", status))
            self._say(f"power {'cut by the flash' if kind == 'cut' else 'off'} (status {status})")
            return
        if kind == "soft" or (kind is None and status == 0):
            # a soft reset keeps the chip's reset cause, as its reset-reason register does
            self.resets.append(("soft", status))
            self._boot(soft=True, raw=raw, note=None)
        else:
            self._hw_reset = kind or "hard"
            self.resets.append(("hard", status))
            why = _WHY.get(kind, kind) if kind else f"interpreter exit status {status}"
            self._boot(soft=False, raw=False, note=b"\r\njanua vboard: hard reset (%s)\r\n" % why.encode())

    def _reap(self, status):
        with self._changed:
            self._child = None
            self._cm = None
            self._changed.notify_all()


# -- CLI ----------------------------------------------------------------------------------------

def configure(parser):
    parser.add_argument("--board", default="esp32", choices=BOARD_NAMES,
                        help="board profile to play: heap, hidden modules; esp32 and rp2040 also their flash chip, "
                             "sys.platform and hal (default: esp32)")
    parser.add_argument("--flash", metavar="DIR", default=None,
                        help="directory of the board's flash chip: flash.bin (the chip, LittleFS on its filesystem "
                             "partition), wear.bin, uid.bin; for --board unix the board's files themselves "
                             "(default: ~/.cache/janua/vboard/BOARD)")
    parser.add_argument("--link", metavar="PATH", default=None,
                        help="also make PATH a symlink to the serial device, e.g. /tmp/janua-esp32")
    parser.add_argument("--erase", action="store_true",
                        help="erase the flash first: a blank chip that the board formats at boot (the hardware "
                             "id and the wear counts stay, as on a chip erase); for --board unix an empty directory")
    parser.add_argument("--verbose", "-v", action="store_true", help="log boots and resets on stderr")


def run(args):
    flash = Path(args.flash) if args.flash else default_flash_dir(args.board)
    log = (lambda m: print(f"janua vboard: {m}", file=sys.stderr, flush=True)) if args.verbose else None
    vb = VirtualBoard(args.board, flash, link=args.link, log=log)
    if args.erase:   # as a chip erase: blank flash (formatted at boot); the hardware id and the wear stay
        if vb.flash is not None:
            vb.flash.image.unlink(missing_ok=True)
        elif flash.exists():
            import shutil
            shutil.rmtree(flash)
    stop = threading.Event()

    def on_term(signum, frame):
        stop.set()

    def on_usr1(signum, frame):   # power-cycle from outside: `kill -USR1 <pid>`
        threading.Thread(target=vb.restart, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGUSR1, on_usr1)
    port = vb.start()
    try:
        print(f"virtual {args.board} board (heap {vb.profile['heap_bytes']} bytes)", flush=True)
        where = f"{vb.flash.image} (LittleFS at / on the board)" if vb.flash is not None else vb.flash_dir
        print(f"flash: {where}", flush=True)
        if vb.link is not None:
            print(f"link:  {vb.link} -> {port}", flush=True)
        print(f"port:  {port}", flush=True)
        print("Ctrl-C stops it; SIGUSR1 power-cycles it", flush=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        vb.stop()
    return 0
