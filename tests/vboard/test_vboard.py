"""The virtual board, flashing and the console, with real processes: the unix port on a pty,
the mpremote command line, pyserial. Each board boots in a fraction of a second."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

from tools import mpremote_util
from tools.boards import load_profile
from tools.build import MPY_OPT, build_firmware, mpy_size
from tools.errors import CLIError
from tools.vboard import VirtualBoard

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CLI = [sys.executable, "-m", "tools"]


def janua(*args, timeout=60):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def mpremote(port, *args):
    return subprocess.run([str(BIN / "mpremote"), "connect", port, *args],
                          capture_output=True, text=True, timeout=30)


def read_for(ser, until, timeout=5):
    data = b""
    end = time.monotonic() + timeout
    while until not in data and time.monotonic() < end:
        data += ser.read(max(1, ser.in_waiting))
    return data


@pytest.fixture
def board(tmp_path):
    with VirtualBoard("esp32", tmp_path / "flash") as vb:
        yield vb


@pytest.fixture
def fake_firmware(tmp_path):
    src = tmp_path / "fw"
    (src / "janua").mkdir(parents=True)
    (src / "janua" / "__init__.py").write_text('VERSION = "0.0-test"\n')
    (src / "janua" / "diag.py").write_text(
        "def report():\n    import janua\n    print('version:', janua.VERSION)\n    print('id: 0011223344556677')\n")
    (src / "hal.py").write_text("def reset():\n    import sys\n    sys.exit(1)\n")
    (src / "main.py").write_text("print('fake main')\n")
    return src


def test_mpremote_exec_twice_without_resume(board):
    for _ in range(2):
        r = mpremote(board.port, "exec", "print(1+1)")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "2"
    # Each mpremote run soft-reset the board (a new interpreter) and kept it in the raw REPL.
    assert [kind for kind, _ in board.resets] == ["soft", "soft"]


def test_mpremote_cp_lands_in_the_flash_dir(board, tmp_path):
    local = tmp_path / "hello.txt"
    local.write_text("hello board")
    r = mpremote(board.port, "fs", "cp", str(local), ":hello.txt", "+", "fs", "ls")
    assert r.returncode == 0, r.stderr
    assert "hello.txt" in r.stdout
    assert (board.root / "hello.txt").read_text() == "hello board"


def test_pyserial_sees_soft_reboot_and_banner(board):
    assert board.wait_repl()
    with serial.Serial(board.port, 115200, timeout=0.1, exclusive=True) as ser:
        ser.write(b"\r\x03")
        read_for(ser, b">>> ")
        time.sleep(0.2)              # both prompts (for \r and for Ctrl-C) have arrived
        ser.reset_input_buffer()
        ser.write(b"\x04")
        out = read_for(ser, b"for more information.")
    assert b"MPY: soft reboot\r\n" in out
    assert b'Type "help()" for more information.' in out


def test_boot_runs_main_py_and_ctrl_c_interrupts_it(board):
    (board.root / "boot.py").write_text("print('boot.py ran')\n")
    (board.root / "main.py").write_text(
        "import time\nprint('main started')\nwhile True:\n    time.sleep(0.01)\n")
    with serial.Serial(board.port, 115200, timeout=0.1, exclusive=True) as ser:
        board.restart()
        out = read_for(ser, b"main started")
        assert b"boot.py ran" in out and b"main started" in out
        ser.write(b"\x03")
        out = read_for(ser, b">>> ")
    assert b"KeyboardInterrupt" in out
    assert board.resets[-1][0] == "power"


def test_nonzero_exit_is_a_hard_reset(board):
    assert board.wait_repl()
    with serial.Serial(board.port, 115200, timeout=0.1, exclusive=True) as ser:
        ser.write(b"import sys; sys.exit(1)\r")
        out = read_for(ser, b">>> ")
    assert b"hard reset" in out and b"MPY: soft reboot" not in out
    assert board.resets[-1] == ("hard", 1)


def test_power_loss_keeps_written_files(board):
    r = mpremote(board.port, "exec", "f = open('state.bin', 'wb')\nf.write(b'abc')\nf.close()")
    assert r.returncode == 0, r.stderr
    board.kill()
    assert not board.running
    assert (board.root / "state.bin").read_bytes() == b"abc"
    board.restart()
    assert board.running
    r = mpremote(board.port, "exec", "print(open('state.bin').read())")
    assert r.stdout.strip() == "abc"


PROBE = (
    "try:\n    import termios\n    print('termios: yes')\nexcept ImportError:\n    print('termios: no')\n"
    "import os\nprint('os.system:', 'yes' if hasattr(os, 'system') else 'no')\n"
    "import gc\ngc.collect()\nprint('heap:', gc.mem_free())\n"
)


@pytest.mark.parametrize("name, hidden", [("esp32", True), ("rp2040", True), ("unix", False)])
def test_profile_hides_modules_and_sets_heap(tmp_path, name, hidden):
    with VirtualBoard(name, tmp_path / "flash") as vb:
        r = mpremote(vb.port, "exec", PROBE)
    assert r.returncode == 0, r.stderr
    lines = dict(line.split(": ", 1) for line in r.stdout.strip().splitlines())
    assert lines["termios"] == ("no" if hidden else "yes")
    assert lines["os.system"] == ("no" if hidden else "yes")
    # What the board's code can allocate: the profile's heap less what the REPL holds (under 10 %).
    # The emulated boards' interpreter has a larger heap, the part the emulation does not use is held
    # back (boards/shim.py), so this is the same figure with and without it.
    heap = int(lines["heap"])
    want = load_profile(name)["heap_bytes"]
    assert 0.9 * want <= heap <= want


def test_hiding_applies_at_the_friendly_repl(board):
    assert board.wait_repl()
    with serial.Serial(board.port, 115200, timeout=0.1, exclusive=True) as ser:
        ser.write(b"import termios\r")
        out = read_for(ser, b">>> ")
    assert b"ImportError" in out


def test_build_firmware_compiles_package_and_hal(tmp_path, fake_firmware):
    files = build_firmware(tmp_path / "out", "unix", package_dir=fake_firmware / "janua",
                           hal_file=fake_firmware / "hal.py", main_file=fake_firmware / "main.py")
    remote = sorted(r for _, r in files)
    assert remote == ["lib/janua/__init__.mpy", "lib/janua/diag.mpy", "lib/janua_hal.mpy", "main.py"]
    assert all(Path(local).is_file() for local, _ in files)
    assert mpy_size(files) > 0
    assert MPY_OPT == 2


def test_flash_then_diag(board, fake_firmware):
    r = janua("flash", "--port", board.port, "--source", str(fake_firmware))
    assert r.returncode == 0, r.stderr
    assert "lib/janua/diag.mpy" in r.stdout
    assert (board.root / "lib" / "janua" / "diag.mpy").is_file()
    assert (board.root / "lib" / "janua_hal.mpy").is_file()
    assert (board.root / "main.py").read_text() == "print('fake main')\n"
    r = janua("console", "--port", board.port, "--diag")
    assert r.returncode == 0, r.stderr
    assert "version: 0.0-test" in r.stdout
    assert "id: 0011223344556677" in r.stdout


def test_diag_says_when_janua_is_not_installed(board):
    r = janua("console", "--port", board.port, "--diag")
    assert r.returncode == 1
    assert "janua: janua is not installed on this board" in r.stderr
    assert "janua flash --port" in r.stderr


@pytest.mark.parametrize("command", [["console", "--diag"], ["console"], ["flash"]])
def test_missing_port_is_a_clear_error(command):
    r = janua(command[0], "--port", "/dev/janua-no-such-port", *command[1:])
    assert r.returncode == 1
    assert r.stderr.startswith("janua: no such port: /dev/janua-no-such-port")
    assert "Traceback" not in r.stderr


def test_busy_port_is_a_clear_error(board):
    with serial.Serial(board.port, exclusive=True):
        r = janua("console", "--port", board.port, "--diag")
        assert r.returncode == 1 and "busy" in r.stderr
        with pytest.raises(CLIError, match="busy"):
            mpremote_util.exec_(board.port, "print(1)")


def test_write_file_atomic_replaces_and_leaves_no_tmp(board):
    mpremote_util.write_file_atomic(board.port, "cfg/cred.bin", b"one")
    mpremote_util.write_file_atomic(board.port, "cfg/cred.bin", b"\x00two\xff")
    assert (board.root / "cfg" / "cred.bin").read_bytes() == b"\x00two\xff"
    assert not (board.root / "cfg" / "cred.bin.tmp").exists()
    with pytest.raises(CLIError):
        mpremote_util.write_file_atomic(board.port, "/etc/passwd", b"x")


def test_exec_error_carries_the_board_traceback(board):
    with pytest.raises(CLIError) as e:
        mpremote_util.exec_(board.port, "raise ValueError('boom')")
    assert "ValueError: boom" in str(e.value) + (e.value.hint or "")


def test_cli_vboard_with_link(tmp_path):
    link = tmp_path / "port"
    p = subprocess.Popen(CLI + ["vboard", "--board", "unix", "--flash", str(tmp_path / "flash"),
                                "--link", str(link)],
                         stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        lines = []
        for line in p.stdout:
            lines.append(line)
            if line.startswith("port:"):
                break
        port = lines[-1].split()[1]
        assert os.path.realpath(link) == port
        r = mpremote(str(link), "exec", "import sys; print(sys.platform)")
        assert r.stdout.strip() == "linux"
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(10)
    assert p.returncode == 0
    assert not link.is_symlink()


@pytest.mark.parametrize("name", ["esp32", "rp2040", "unix"])
def test_every_board_hal_compiles_into_the_firmware(tmp_path, name):
    files = build_firmware(tmp_path, name)
    remote = [r for _, r in files]
    assert "lib/janua_hal.mpy" in remote and "main.py" in remote


@pytest.mark.parametrize("call, kind", [("sys.exit(1)", "hard"), ("sys.exit()", "soft")])
def test_sys_exit_in_main_resets_the_board_by_itself(tmp_path, call, kind):
    vb = VirtualBoard("esp32", tmp_path / "flash")
    (vb.root / "main.py").write_text(
        "import os, sys\n"
        "try:\n    os.stat('once')\nexcept OSError:\n"
        "    open('once', 'w').close()\n    print('resetting')\n    " + call + "\n"
        "print('second boot')\n")
    with vb:
        with serial.Serial(vb.port, 115200, timeout=0.1, exclusive=True) as ser:
            vb.restart()
            out = read_for(ser, b"second boot", timeout=10)
        assert b"second boot" in out
        assert (kind, 1 if kind == "hard" else 0) in vb.resets


def test_mip_package_lists_every_firmware_module():
    pkg = json.loads((ROOT / "firmware" / "package.json").read_text())
    listed = {src for _, src in pkg["urls"]}
    present = {"janua/" + p.name for p in (ROOT / "firmware" / "janua").glob("*.py")} | {"main.py"}
    assert listed == present
