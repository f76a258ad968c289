"""`janua flash`: build the firmware with mpy-cross and install it onto a board with mpremote.

The board's platform decides the hal: a real ESP32 or Pico W gets boards/<board>/hal.py; a
virtual board (the unix port, sys.platform "linux") gets boards/unix/hal.py whatever profile it
plays. Files already on the board with the same sha256 are skipped. The board is soft-reset at
the end so main.py starts with the new code.
"""

import tempfile
from pathlib import Path

from tools import mpremote_util
from tools.boards import BOARD_NAMES
from tools.build import build_firmware
from tools.console import soft_reset
from tools.errors import CLIError

# sys.platform on the board -> the profile whose hal it needs.
PLATFORM_BOARD = {"esp32": "esp32", "rp2": "rp2040", "linux": "unix"}


def detect_board(port):
    """The board name (as in boards/) that the board on `port` needs a hal for."""
    out = mpremote_util.exec_(port, "import sys\nprint(sys.platform)").strip().splitlines()
    platform = out[-1].strip() if out else ""
    board = PLATFORM_BOARD.get(platform)
    if board is None:
        raise CLIError(f"the board on {port} runs MicroPython for {platform!r}, which janua does not support",
                       hint="supported: " + ", ".join(sorted(PLATFORM_BOARD)))
    return board


def flash(port, board=None, package_dir=None, hal_file=None, main_file=None, force=False, echo=True):
    """Build and copy the firmware; return [(local, device path)] installed."""
    detected = detect_board(port)
    if board is not None and detected != "unix" and board != detected:
        raise CLIError(f"--board {board} but the board on {port} is an {detected}",
                       hint=f"use --board {detected}, or leave --board out")
    hal_board = detected  # a virtual board plays any profile on the unix hal
    with tempfile.TemporaryDirectory(prefix="janua-build-") as out:
        files = build_firmware(out, hal_board, package_dir=package_dir, hal_file=hal_file, main_file=main_file)
        if echo:
            print(f"installing {len(files)} files onto {port} ({hal_board} hal)", flush=True)
        mpremote_util.cp_many(port, files, echo=echo, force=force)
    soft_reset(port)
    return files


def configure(parser):
    parser.add_argument("--port", required=True, help="serial port of the board, or `auto` (USB VID:PID)")
    parser.add_argument("--board", choices=BOARD_NAMES, default=None,
                        help="check that the board is this one (default: detected from the board)")
    parser.add_argument("--force", action="store_true", help="copy every file, even unchanged ones")
    parser.add_argument("--source", metavar="DIR", default=None,
                        help="install DIR/janua/*.py, DIR/hal.py and DIR/main.py instead of the repo's firmware")


def run(args):
    port = mpremote_util.resolve_port(args.port)
    src = Path(args.source) if args.source else None
    flash(port, args.board,
          package_dir=src / "janua" if src else None,
          hal_file=(src / "hal.py") if src else None,
          main_file=(src / "main.py") if src else None,
          force=args.force)
    print("done; the board was soft-reset", flush=True)
    return 0
