"""`janua console`: a serial terminal to a board, or `--diag` to print its janua status.

pyserial directly (not mpremote): the port is opened exclusively so a second program gets a clear
"busy" instead of stolen bytes. The terminal is raw; Ctrl-] quits. A lone "\\n" from the board is
shown as "\\r\\n" (the virtual board does not translate line endings, a real board does).

`--diag` interrupts what runs (Ctrl-C), enters the raw REPL, runs `janua.diag.report()` and
prints its "key: value" lines; if it interrupted a program it soft-resets the board afterwards
in the friendly REPL so main.py starts again.
"""

import os
import sys
import threading
import time

from tools.errors import CLIError
from tools.mpremote_util import check_port, resolve_port

QUIT = b"\x1d"  # Ctrl-]
RAW_PROMPT = b"raw REPL; CTRL-B to exit\r\n>"
NOT_INSTALLED = "JANUA-NOT-INSTALLED"
DIAG_CODE = (
    "try:\n"
    "    import janua\n"
    "except ImportError:\n"
    "    print('%s')\n"
    "else:\n"
    "    import janua.diag\n"
    "    janua.diag.report()\n" % NOT_INSTALLED
)


def open_port(port, baud=115200, timeout=0.1):
    import serial

    port = resolve_port(port)
    check_port(port)
    try:
        return serial.Serial(port, baud, timeout=timeout, exclusive=True)
    except serial.SerialException as e:
        text = str(e)
        if "Could not exclusively lock" in text or "Resource temporarily unavailable" in text:
            raise CLIError(f"cannot open {port}: it is busy",
                           hint="is the board in use by another program, e.g. a console or mpremote?")
        raise CLIError(f"cannot open {port}: {text}",
                       hint="is the board plugged in? `janua vboard` prints its port")


def _read_until(ser, ending, timeout, buf=None):
    """Read until `ending`; return (data up to and including it, found). Bytes read past it stay
    in `buf` (a bytearray) for the next call."""
    buf = bytearray() if buf is None else buf
    end = time.monotonic() + timeout
    while True:
        i = buf.find(ending)
        if i >= 0:
            data = bytes(buf[: i + len(ending)])
            del buf[: i + len(ending)]
            return data, True
        if time.monotonic() > end:
            data = bytes(buf)
            buf.clear()
            return data, False
        buf += ser.read(max(1, ser.in_waiting))


class RawREPL:
    """The raw REPL over an open pyserial port: enough to run one snippet and read its output."""

    def __init__(self, ser, timeout=10):
        self.ser = ser
        self.timeout = timeout
        self.interrupted = False
        self._buf = bytearray()

    def enter(self):
        ser = self.ser
        ser.write(b"\r\x03")
        time.sleep(0.1)
        ser.write(b"\x03")
        time.sleep(0.1)
        seen = ser.read(ser.in_waiting or 1)
        self.interrupted = b"KeyboardInterrupt" in seen or b"Traceback" in seen
        ser.reset_input_buffer()
        ser.write(b"\r\x01")
        self._buf.clear()
        data, ok = _read_until(ser, RAW_PROMPT, self.timeout, self._buf)
        if not ok:
            raise CLIError(f"the board on {ser.port} does not answer with a raw REPL",
                           hint="is MicroPython running on it? press reset")

    def exec_(self, code):
        """Run `code`; return (stdout, stderr) as text."""
        ser = self.ser
        ser.write(code.encode() + b"\x04")
        ok, _ = _read_until(ser, b"OK", self.timeout, self._buf)
        if ok != b"OK":
            raise CLIError(f"the board on {ser.port} did not accept the code (answer {ok!r})")
        out, ok1 = _read_until(ser, b"\x04", self.timeout, self._buf)
        err, ok2 = _read_until(ser, b"\x04", self.timeout, self._buf)
        if not (ok1 and ok2):
            raise CLIError(f"the board on {ser.port} did not finish within {self.timeout} s")
        return out[:-1].decode(errors="replace"), err[:-1].decode(errors="replace")

    def leave(self, reboot=False):
        self.ser.write(b"\r\x02")   # back to the friendly REPL
        if reboot:
            time.sleep(0.1)
            self.ser.write(b"\x04")  # soft reset there: boot.py and main.py run again


def diag(port, baud=115200, out=sys.stdout):
    with open_port(port, baud) as ser:
        repl = RawREPL(ser)
        repl.enter()
        try:
            stdout, stderr = repl.exec_(DIAG_CODE)
        finally:
            repl.leave(reboot=repl.interrupted)
    if NOT_INSTALLED in stdout:
        raise CLIError("janua is not installed on this board", hint=f"run `janua flash --port {port}`")
    if stderr:
        raise CLIError("janua.diag failed on the board: " + stderr.strip().splitlines()[-1],
                       hint=stderr.strip())
    for line in stdout.replace("\r\n", "\n").splitlines():
        print(line, file=out)
    return stdout


def soft_reset(port, baud=115200):
    """Soft-reset the board in the friendly REPL, so that main.py runs (mpremote's stays raw)."""
    with open_port(port, baud) as ser:
        ser.write(b"\r\x03\x03\x02")   # stop what runs, leave the raw REPL if in it
        time.sleep(0.2)
        ser.reset_input_buffer()
        ser.write(b"\x04")


def _cooked(data, last):
    # Show a lone "\n" as "\r\n"; `last` is the byte before `data`.
    outb = bytearray()
    for b in data:
        if b == 10 and last != 13:
            outb += b"\r"
        outb.append(b)
        last = b
    return bytes(outb), last


def interactive(port, baud=115200):
    import termios
    import tty

    ser = open_port(port, baud)
    stdin = sys.stdin.fileno()
    is_tty = os.isatty(stdin)
    print(f"janua console on {ser.port} ({baud} baud); Ctrl-] quits", file=sys.stderr, flush=True)
    stop = threading.Event()

    def reader():
        last = 0
        while not stop.is_set():
            try:
                data = ser.read(max(1, ser.in_waiting))
            except Exception:  # the port went away (board unplugged, vboard stopped)
                stop.set()
                print("\r\njanua: the port closed", file=sys.stderr, flush=True)
                return
            if data:
                shown, last = _cooked(data, last)
                os.write(sys.stdout.fileno(), shown)

    saved = termios.tcgetattr(stdin) if is_tty else None
    t = threading.Thread(target=reader, daemon=True)
    try:
        if is_tty:
            tty.setraw(stdin)
        t.start()
        while not stop.is_set():
            data = os.read(stdin, 1024)
            if not data:
                break
            if QUIT in data:
                data = data[: data.index(QUIT)]
                if data:
                    ser.write(data)
                break
            ser.write(data)
        if not is_tty:
            time.sleep(0.3)   # let the board's answer to piped input arrive
    finally:
        stop.set()
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        t.join(1)
        ser.close()
    print("", file=sys.stderr)
    return 0


def configure(parser):
    parser.add_argument("--port", required=True, help="serial port of the board, or `auto` (USB VID:PID)")
    parser.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200; USB boards ignore it)")
    parser.add_argument("--diag", action="store_true", help="print the board's janua status and exit")


def run(args):
    if args.diag:
        diag(args.port, args.baud)
        return 0
    return interactive(args.port, args.baud)
