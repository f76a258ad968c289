"""`janua flash`: build the firmware with mpy-cross and install it onto a board with mpremote.

The board's sys.platform decides the hal: "esp32" gets boards/esp32/hal.py and "rp2" boards/rp2040/hal.py,
on a real board and on the virtual esp32 and rp2040 boards alike (they report their profile's platform,
tools/vboard.py); "linux", the unix port (the virtual board's `unix` profile), gets boards/unix/hal.py.
`--board` only checks the detected board. Files already on the board with the same sha256 are skipped.
The board is soft-reset at the end so main.py starts with the new code.

The firmware's declared dependencies (firmware/package.json "deps", e.g. umqtt.simple) are installed too
when a copy is found locally (DEP_DIRS: .venv/mplib, where `make mplib` puts them), compiled with mpy-cross
like the rest, into lib/ as mip would put them. A missing one is not an error: a one-line hint says how to
install it on the board (`mpremote mip install NAME`). `--no-deps` skips them.

.mpy compatibility (tools/mpy_compat.py): the board's sys.implementation._mpy, read together with
sys.platform, is compared with the header of what our mpy-cross makes. `--mpy yes` (the default)
refuses a board that cannot load them, with a hint; `--mpy auto` installs the .py sources instead
(with a note); `--mpy no` always installs the sources. The other kind's file of each installed module
is removed from the board (a .py left over from a source install would shadow the new .mpy: MicroPython
imports foo.py before foo.mpy).
"""

import json
import shutil
import tempfile
from pathlib import Path

from tools import mpremote_util, mpy_compat
from tools.boards import BOARD_NAMES, FIRMWARE_DIR, ROOT
from tools.build import build_firmware, compile_mpy
from tools.console import soft_reset
from tools.errors import CLIError

# sys.platform on the board -> the profile whose hal it needs.
PLATFORM_BOARD = {"esp32": "esp32", "rp2": "rp2040", "linux": "unix"}


DEP_DIRS = (ROOT / ".venv" / "mplib",)
# umqtt.simple checks the broker's packets with asserts: compile dependencies at -O0 to keep them (mpy-cross
# -O2, the level janua itself ships at, would drop them).
DEP_OPT = 0


def dep_files(out_dir, package_json=FIRMWARE_DIR / "package.json", search=DEP_DIRS, mpy=True):
    """([(local .mpy, device path)], [missing dep names]) for package.json's "deps" (.py copies when not
    `mpy`). A dep `a.b` is module a/b.py (micropython-lib's naming), looked for in each of `search` in turn."""
    try:
        deps = json.loads(Path(package_json).read_text()).get("deps", [])
    except (OSError, ValueError) as e:
        raise CLIError(f"cannot read {package_json}: {e}")
    files, missing = [], []
    for entry in deps:
        name = entry[0] if isinstance(entry, list) else entry
        rel = name.replace(".", "/") + ".py"
        src = next((Path(d) / rel for d in search if (Path(d) / rel).is_file()), None)
        if src is None:
            missing.append(name)
            continue
        if mpy:
            dst = compile_mpy(src, Path(out_dir) / "deps" / (rel[:-3] + ".mpy"), rel, opt=DEP_OPT)
        else:
            dst = Path(out_dir) / "deps" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        files.append((dst, "lib/" + rel[:-3] + dst.suffix))
    return files, missing


# One round trip: the platform, then _mpy (-1 when the board has none).
PROBE_CODE = "import sys\nprint(sys.platform)\nprint(getattr(sys.implementation, '_mpy', -1))"


def detect_board(port):
    """(board name as in boards/ whose hal the board on `port` needs, its sys.implementation._mpy or None)."""
    out = [line.strip() for line in mpremote_util.exec_(port, PROBE_CODE).strip().splitlines()]
    platform = out[-2] if len(out) >= 2 else ""
    board = PLATFORM_BOARD.get(platform)
    if board is None:
        raise CLIError(f"the board on {port} runs MicroPython for {platform!r}, which janua does not support",
                       hint="supported: " + ", ".join(sorted(PLATFORM_BOARD)))
    try:
        mpy = int(out[-1])
    except ValueError:
        raise CLIError(f"the board on {port} answered {out[-1]!r} for sys.implementation._mpy")
    return board, (mpy if mpy >= 0 else None)


MPY_MODES = ("yes", "auto", "no")


def choose_mpy(port, mode, board_mpy, work_dir):
    """Whether to install .mpy files (True) or the .py sources (False) on a board reporting `board_mpy`."""
    if mode == "no":
        return False
    why = mpy_compat.board_mismatch(board_mpy, mpy_compat.cross_header(work_dir))
    if why is None:
        return True
    if mode == "yes":
        raise CLIError(f"the board on {port} cannot load janua's .mpy files: {why}",
                       hint="update the board's MicroPython, or install the .py sources instead: "
                            "janua flash --mpy auto (or --mpy no)")
    print(f"janua flash: {why}: installing the .py sources instead (imports compile on the board: "
          "slower, and more RAM at import)", flush=True)
    return False


def counterparts(files):
    """The other kind's device path of each installed module (x.py for x.mpy and back), main.py aside."""
    out = []
    for _, remote in files:
        if remote.startswith("lib/") and remote.endswith(".mpy"):
            out.append(remote[:-4] + ".py")
        elif remote.startswith("lib/") and remote.endswith(".py"):
            out.append(remote[:-3] + ".mpy")
    return out


def flash(port, board=None, package_dir=None, hal_file=None, main_file=None, force=False, echo=True, deps=True,
          mpy="yes"):
    """Build and copy the firmware (and, with `deps`, the dependencies found locally); return
    [(local, device path)] installed. `mpy`: one of MPY_MODES (module docstring)."""
    detected, board_mpy = detect_board(port)
    if board is not None and board != detected:
        raise CLIError(f"--board {board}, but the board on {port} is {detected}",
                       hint=f"use --board {detected}, or leave --board out")
    hal_board = detected  # the hal of the board that answered, virtual or not
    with tempfile.TemporaryDirectory(prefix="janua-build-") as out:
        use_mpy = choose_mpy(port, mpy, board_mpy, out)
        files = build_firmware(out, hal_board, package_dir=package_dir, hal_file=hal_file, main_file=main_file,
                               mpy=use_mpy)
        if deps:
            extra, missing = dep_files(out, mpy=use_mpy)
            files += extra
            for name in missing:
                print(f"janua flash: dependency {name} not found locally (make mplib); install it on the board: "
                      f"mpremote mip install {name}", flush=True)
        if echo:
            print(f"installing {len(files)} files onto {port} ({hal_board} hal, "
                  f"{'.mpy' if use_mpy else '.py source'})", flush=True)
        mpremote_util.cp_many(port, files, echo=echo, force=force, remove=counterparts(files))
    soft_reset(port)
    return files


def configure(parser):
    parser.add_argument("--port", required=True, help="serial port of the board, or `auto` (USB VID:PID)")
    parser.add_argument("--board", choices=BOARD_NAMES, default=None,
                        help="check that the board is this one (default: detected from the board)")
    parser.add_argument("--force", action="store_true", help="copy every file, even unchanged ones")
    parser.add_argument("--no-deps", action="store_true",
                        help="do not install the firmware's dependencies (package.json deps, e.g. umqtt.simple)")
    parser.add_argument("--mpy", choices=MPY_MODES, default="yes",
                        help="yes: compiled .mpy files, refused if the board cannot load them (default); "
                             "auto: .mpy when the board loads them, else the .py sources; no: the .py sources")
    parser.add_argument("--source", metavar="DIR", default=None,
                        help="install DIR/janua/*.py, DIR/hal.py and DIR/main.py instead of the repo's firmware")


def run(args):
    port = mpremote_util.resolve_port(args.port)
    src = Path(args.source) if args.source else None
    flash(port, args.board,
          package_dir=src / "janua" if src else None,
          hal_file=(src / "hal.py") if src else None,
          main_file=(src / "main.py") if src else None,
          force=args.force, deps=not args.no_deps, mpy=args.mpy)
    print("done; the board was soft-reset", flush=True)
    return 0
