"""Talk to a board through the `mpremote` command line (its Python API is not stable).

Every helper runs one mpremote process (commands chained with `+`, so the board is opened and
soft-reset once) and turns its failures into CLIError with a hint. Device paths are always
relative (":lib/janua/x.mpy"): a board's working directory is its filesystem root; so is the virtual
esp32's and rp2040's (LittleFS on the emulated chip, mounted at /), and the unix profile's is its flash
directory, so nothing is ever written outside it.

Not here: the console (tools/console.py uses pyserial) and building (tools/build.py).
"""

import os
import subprocess
import tempfile

from tools.boards import venv_binary
from tools.errors import CLIError

TIMEOUT_S = 60


def mpremote_binary():
    return venv_binary("mpremote")


def resolve_port(port):
    """`auto` -> the first serial port whose USB VID:PID is in a board profile; else `port`."""
    if port != "auto":
        return port
    from serial.tools import list_ports

    from tools.boards import BOARD_NAMES, load_profile

    known = {}
    for name in BOARD_NAMES:
        for vidpid in load_profile(name).get("usb_ids", []):
            known.setdefault(vidpid.lower(), name)
    for p in sorted(list_ports.comports(), key=lambda p: p.device):
        if p.vid is None:
            continue
        vidpid = "%04x:%04x" % (p.vid, p.pid)
        if vidpid in known:
            return p.device
    raise CLIError("no board found on USB",
                   hint="plug the board in, or pass --port (for a virtual board, the port `janua vboard` printed)")


def check_port(port):
    if not os.path.exists(port):
        raise CLIError(f"no such port: {port}",
                       hint="is the board plugged in? `janua vboard` prints its port")


def _failure(port, out, err):
    text = (err or "") + (out or "")
    if "failed to access" in text:
        if not os.path.exists(port):
            return CLIError(f"no such port: {port}", hint="is the board plugged in? `janua vboard` prints its port")
        return CLIError(f"cannot open {port}: it is busy",
                        hint="is the board in use by another program, e.g. a console?")
    if "could not enter raw repl" in text:
        return CLIError(f"the board on {port} does not answer with a raw REPL",
                        hint="is MicroPython running on it? press reset, or stop a program that ignores Ctrl-C")
    detail = text.strip().splitlines()
    return CLIError(f"mpremote failed on {port}: " + (detail[-1] if detail else "no output"),
                    hint="\n".join(detail[-8:-1]) or None)


def run(port, *args, timeout=TIMEOUT_S, echo=False):
    """Run `mpremote connect PORT ARGS...`; return its stdout. `echo` streams it to ours."""
    check_port(port)
    argv = [mpremote_binary(), "connect", port, *args]
    try:
        if not echo:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
            out, err, rc = r.stdout, r.stderr, r.returncode
        else:
            p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            lines = []
            for line in p.stdout:
                lines.append(line)
                print(line, end="", flush=True)
            err = p.stderr.read()
            rc = p.wait(timeout)
            out = "".join(lines)
    except subprocess.TimeoutExpired:
        raise CLIError(f"the board on {port} did not answer within {timeout} s",
                       hint="is a program on it stuck with interrupts disabled? press reset")
    if rc != 0:
        raise _failure(port, out, err)
    return out


def exec_(port, code, timeout=TIMEOUT_S):
    """Run `code` on the board (after a soft reset); return what it printed.

    An exception on the board raises CLIError carrying the board's traceback.
    """
    return run(port, "exec", code, timeout=timeout)


def mkdirs_code(dirs):
    """MicroPython code that creates `dirs` (relative, parents first) and ignores existing ones."""
    wanted = []
    for d in dirs:
        parts = [p for p in str(d).split("/") if p]
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if sub not in wanted:
                wanted.append(sub)
    if not wanted:
        return ""
    return ("import os\nfor d in %r:\n    try:\n        os.mkdir(d)\n    except OSError:\n        pass\n"
            % (wanted,))


def _check_remote(path):
    if path.startswith("/") or ".." in path.split("/"):
        raise CLIError(f"device path {path!r} must be relative and stay inside the board's filesystem")


def remove_code(paths):
    """MicroPython code that removes the files `paths` (relative) where they exist."""
    if not paths:
        return ""
    return ("import os\nfor p in %r:\n    try:\n        os.remove(p)\n    except OSError:\n        pass\n"
            % (list(paths),))


def cp_many(port, pairs, timeout=TIMEOUT_S, echo=False, force=False, remove=()):
    """Copy [(local, device path)] onto the board in one mpremote run; parents are created, and the
    files `remove` (device paths) deleted first where they exist.

    mpremote skips files whose sha256 already matches on the board unless `force`.
    """
    pairs = [(str(local), str(remote).lstrip(":")) for local, remote in pairs]
    remove = [str(r).lstrip(":") for r in remove]
    for local, remote in pairs:
        _check_remote(remote)
        if not os.path.isfile(local):
            raise CLIError(f"no such file: {local}")
    for remote in remove:
        _check_remote(remote)
    dirs = sorted({r.rsplit("/", 1)[0] for _, r in pairs if "/" in r})
    args = []
    code = remove_code(remove) + mkdirs_code(dirs)
    if code:
        args += ["exec", code, "+"]
    for local, remote in pairs:
        args += ["fs", "cp"] + (["-f"] if force else []) + [local, ":" + remote, "+"]
    if not args:
        return ""
    return run(port, *args[:-1], timeout=timeout, echo=echo)


def write_file_atomic(port, remote_path, data, timeout=TIMEOUT_S):
    """Replace `remote_path` on the board with `data` so that a power cut leaves old or new.

    The bytes go to `<path>.tmp`, then os.rename moves them over the old file. MicroPython's
    rename replaces an existing file on the unix port (POSIX rename), on littlefs (lfs_rename) and
    on FAT (vfs_fat removes the target first: a cut between the two steps leaves only
    `<path>.tmp`, which the firmware's loader falls back to).
    """
    remote_path = remote_path.lstrip(":")
    _check_remote(remote_path)
    tmp = remote_path + ".tmp"
    with tempfile.TemporaryDirectory(prefix="janua-") as d:
        local = os.path.join(d, "data")
        with open(local, "wb") as f:
            f.write(data)
        args = []
        if "/" in remote_path:
            args += ["exec", mkdirs_code([remote_path.rsplit("/", 1)[0]]), "+"]
        code = "import os\nos.rename(%r, %r)\n" % (tmp, remote_path)
        args += ["fs", "cp", "-f", local, ":" + tmp, "+", "exec", code]
        run(port, *args, timeout=timeout)
