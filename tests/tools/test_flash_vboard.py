"""`janua flash` picks the hal from the board's sys.platform: on the virtual esp32 and rp2040, which report
their own platform, it installs boards/esp32/hal.py and boards/rp2040/hal.py (machine.unique_id() of the
emulated chip: 6 bytes on the esp32, 8 on the rp2040); only the unix profile gets boards/unix/hal.py. A
--board that is not the board's is refused before anything is copied."""

import subprocess
import sys
from pathlib import Path

import pytest

from tools import mpremote_util
from tools.vboard import VirtualBoard

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
PROBE = "import sys, janua_hal\nprint(sys.platform, janua_hal.board(), janua_hal.unique_id().hex())\n"


def janua(*args):
    return subprocess.run([sys.executable, "-m", "tools", *args], capture_output=True, text=True, timeout=180,
                          cwd=ROOT)


@pytest.mark.parametrize("board, platform, id_bytes", [
    ("esp32", "esp32", 6),
    ("rp2040", "rp2", 8),
    ("unix", "linux", 8),
])
def test_flash_installs_the_hal_of_the_board_that_answers(tmp_path, board, platform, id_bytes):
    with VirtualBoard(board, tmp_path / "flash") as vb:
        r = janua("flash", "--port", vb.port, "--no-deps")
        assert r.returncode == 0, r.stderr
        assert f"onto {vb.port} ({board} hal, " in r.stdout
        got_platform, got_board, uid = mpremote_util.exec_(vb.port, PROBE).split()[-3:]
        assert (got_platform, got_board, len(bytes.fromhex(uid))) == (platform, board, id_bytes)
        if vb.flash is not None:            # the hal asks the emulated machine for the chip's id
            assert uid == vb.flash.unique_id().hex()


def test_flash_refuses_a_board_option_that_is_not_the_board(tmp_path):
    with VirtualBoard("esp32", tmp_path / "flash") as vb:
        r = janua("flash", "--port", vb.port, "--board", "rp2040", "--no-deps")
        assert r.returncode == 1
        assert r.stderr.splitlines()[0] == f"janua: --board rp2040, but the board on {vb.port} is esp32"
        assert not (vb.root / "lib").exists()
