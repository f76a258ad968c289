"""The byte level of the virtual board's serial port (tools/vboard.py): what the interpreter prints,
with the supervisor's boot/exit marks stripped and the REPL mode tracked, and what the client sends,
with Ctrl-C turned into SIGINT while code runs. A mixin of VirtualBoard, which owns the state it uses
(_phase, _buf, _raw, _tail, _outq, _inq, _um, _cm, _child, _exit_status, _out_stalled_since).
"""

import os
import signal
import termios
import time

from tools.boards import RESET_MARK

RAW_PROMPT = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY_BANNER = b'Type "help()" for more information.'
SOFT_REBOOT = b"MPY: soft reboot\r\n"
# Written by boards/shim.py when boot.py/main.py are done: an OSC escape that terminals ignore,
# stripped by the supervisor so clients never see it.
BOOT_MARK = "\x1b]janua-vboard-booted\x07"
_MARK = BOOT_MARK.encode()
# Written by the shim when boot.py/main.py calls sys.exit(code): the unix port started with -i would
# swallow the SystemExit into its REPL, so the supervisor ends the interpreter itself and resets
# the board as if it had exited with `code` (0: soft reset, else hard reset, as on a board).
EXIT_MARK = "\x1b]janua-vboard-exit:"
_EXIT = EXIT_MARK.encode()
_RESET = RESET_MARK.encode()   # the emulated board ends itself: machine.reset(), a watchdog, a power cut
_OUT_STALL_S = 0.5   # nobody reading the port for this long: drop output, as a UART would
MAX_INQ = 65536   # bytes from the client held while the interpreter boots


class SerialBytes:
    # -- bytes from the interpreter -----------------------------------------------------------

    def _from_child(self, data):
        data = self._scan_reset(data)
        if not data:
            return
        if self._phase == "run":
            self._forward(data)
            return
        self._buf += data
        if self._phase == "boot":
            j = self._buf.find(_EXIT)
            if j >= 0 and b"\x07" in self._buf[j:]:
                end = self._buf.index(b"\x07", j)
                try:
                    code = int(self._buf[j + len(_EXIT):end])
                except ValueError:
                    code = 1
                self._forward(self._buf[:j])
                self._buf = b""
                self._exit_status = code
                self._child.kill()      # _child_gone() then resets the board with `code`
                return
            i = self._buf.find(_MARK)
            if i < 0:
                # Forward all but what could be the start of the marker.
                keep = 0
                for n in range(min(len(_MARK) - 1, len(self._buf)), 0, -1):
                    if _MARK.startswith(self._buf[-n:]):
                        keep = n
                        break
                self._forward(self._buf[: len(self._buf) - keep])
                self._buf = self._buf[len(self._buf) - keep:]
                return
            self._forward(self._buf[:i])
            rest = self._buf[i + len(_MARK):]
            self._buf = b""
            if self._raw:
                self._phase = "rawsync"   # swallow the banner, enter the raw REPL, then run
                self._buf = rest
                self._from_child(b"")
                return
            self._phase = "run"
            if rest:
                self._forward(rest)
            return
        # rawsync: wait for the raw REPL prompt the Ctrl-A we sent produces.
        i = self._buf.find(RAW_PROMPT)
        if i < 0:
            self._buf = self._buf[-len(RAW_PROMPT):]
            return
        rest = self._buf[i:]
        self._buf = b""
        self._phase = "run"
        self._forward(rest)

    def _scan_reset(self, data):
        # Strip a RESET_MARK (in any phase); what follows it is the dying interpreter's and dropped.
        # Bytes that could begin a mark split across reads are held back until the next read.
        if self._reset_kind is not None:
            return b""
        data = self._rhold + data
        self._rhold = b""
        if b"\x1b" not in data:
            return data
        j = data.find(_RESET)
        if j >= 0:
            end = data.find(b"\x07", j)
            if end < 0:
                self._rhold = data[j:]
                return data[:j]
            self._reset_kind = data[j + len(_RESET):end].decode("ascii", "replace")
            try:
                self._child.kill()      # _child_gone() then boots the board as `kind` says
            except OSError:
                pass
            return data[:j]
        for n in range(min(len(_RESET) - 1, len(data)), 0, -1):
            if _RESET.startswith(data[-n:]):
                self._rhold = data[-n:]
                return data[:-n]
        return data

    def _forward(self, data):
        if not data:
            return
        # Track the REPL mode from what the interpreter prints, across read boundaries.
        seen = self._tail + data
        r = seen.rfind(RAW_PROMPT)
        f = seen.rfind(FRIENDLY_BANNER)
        if r >= 0 or f >= 0:
            self._raw = r > f
        self._tail = seen[-64:]
        self._emit(data)

    def _emit(self, data):
        self._outq += data
        self._flush_out()

    def _flush_out(self):
        while self._outq:
            try:
                n = os.write(self._um, self._outq)
            except BlockingIOError:
                now = time.monotonic()
                if self._out_stalled_since is None:
                    self._out_stalled_since = now
                elif now - self._out_stalled_since > _OUT_STALL_S:
                    self._outq.clear()   # nobody reads the port: the bytes are lost, as on a UART
                return
            except OSError:
                self._outq.clear()
                return
            del self._outq[:n]
            self._out_stalled_since = None

    # -- bytes from the client ----------------------------------------------------------------

    def _from_client(self, data):
        if self._child is None:
            return  # powered off: the bytes go nowhere
        parts = data.split(b"\x03")
        for k, part in enumerate(parts):
            if k:
                self._ctrl_c()
            if part:
                self._inq += part
        if self._phase == "run":
            self._flush_in()

    def _ctrl_c(self):
        try:
            running_code = termios.tcgetattr(self._cm)[3] & termios.ISIG
        except termios.error:
            running_code = False
        if running_code:
            self._flush_in()   # what came before the Ctrl-C is read before it, as on a board
            try:
                self._child.send_signal(signal.SIGINT)
            except OSError:
                pass
        else:
            self._inq += b"\x03"

    def _flush_in(self):
        if self._phase == "run" and self._inq:
            n = self._write_child(bytes(self._inq))
            del self._inq[:n]

    def _write_child(self, data):
        try:
            return os.write(self._cm, data)
        except (BlockingIOError, OSError):
            return 0
