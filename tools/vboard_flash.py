"""The virtual board's flash chip on the host: the image files and host-side access to its files.

A board's flash is a directory holding
    flash.bin   the whole chip (the profile's flash_bytes), erased to 0xFF when created
    wear.bin    erases per 4 KiB sector, one little-endian uint32 each (written by the board)
    uid.bin     the hardware id the board reports (esp32: a 6-byte MAC in Espressif's OUI 24:0a:c4;
                rp2040: the 8-byte id of the QSPI flash chip), made at creation
The board (boards/vboard/vb_flashchip.py) reads and writes flash.bin as NOR flash and mounts the
profile's filesystem partition as LittleFS2. `FlashImage.root` is a path-like view of that
filesystem for tests and tools (littlefs-python on the same image): read it any time the board is
idle; write it only while the board is off or idle at its REPL (every mpremote command soft-resets
the board, which mounts the filesystem afresh). Host writes are not counted as wear.
"""

import os
import struct
from pathlib import Path, PurePosixPath

from tools.errors import CLIError

SECTOR = 4096
ESPRESSIF_OUI = bytes.fromhex("240ac4")
# MicroPython's vfs.VfsLfs2 defaults (extmod/vfs_lfsx.c): read and program size 32, lookahead 32;
# the block is the flash's 4 KiB sector.
_LFS = dict(block_size=SECTOR, read_size=32, prog_size=32, lookahead_size=32)


def fs_region(spec):
    """(offset, size) of the filesystem partition of a profile's "vboard" section."""
    fs = spec["fs"]
    if isinstance(fs, str):
        for p in spec.get("partitions", ()):
            if p[0] == fs:
                return p[3], p[4]
        raise CLIError(f"the board profile has no partition {fs!r}")
    return fs[0], fs[1]


class FlashImage:
    def __init__(self, directory, profile):
        self.dir = Path(directory)
        self.profile = profile
        self.spec = profile["vboard"]
        self.size = profile["flash_bytes"]
        self.image = self.dir / "flash.bin"
        self.wear_file = self.dir / "wear.bin"
        self.uid_file = self.dir / "uid.bin"

    def create(self):
        """Make the chip if it does not exist yet: erased flash, zero wear, a new hardware id."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.uid_file.exists():
            n = self.spec.get("unique_id_bytes", 8)
            uid = ESPRESSIF_OUI + os.urandom(3) if n == 6 else os.urandom(n)
            _write_new(self.uid_file, uid)
        if not self.image.exists():
            blank = b"\xff" * (1 << 16)
            tmp = self.image.with_name("flash.bin.tmp")
            with open(tmp, "wb") as f:
                for _ in range(self.size // len(blank)):
                    f.write(blank)
            os.replace(tmp, self.image)
        if not self.wear_file.exists():
            _write_new(self.wear_file, bytes(4 * (self.size // SECTOR)))
        return self

    def unique_id(self):
        return self.uid_file.read_bytes()

    def wear(self):
        """Erases per sector, a list of ints (index = sector number from the chip's start)."""
        data = self.wear_file.read_bytes()
        return list(struct.unpack("<%dI" % (len(data) // 4), data))

    def fs_wear(self):
        """Erases per block of the filesystem partition only."""
        off, size = fs_region(self.spec)
        return self.wear()[off // SECTOR:(off + size) // SECTOR]

    def env(self):
        """The JANUA_VBOARD_* variables a board interpreter needs for this chip."""
        return {"JANUA_VBOARD_FLASH": str(self.image), "JANUA_VBOARD_WEAR": str(self.wear_file),
                "JANUA_VBOARD_UID": self.unique_id().hex()}

    @property
    def root(self):
        self.create()
        return FlashPath(self, "/")

    # -- host-side LittleFS --------------------------------------------------------------------

    def _open_fs(self, write):
        from littlefs import LittleFS, LittleFSError, UserContext
        off, size = fs_region(self.spec)
        with open(self.image, "rb") as f:
            f.seek(off)
            data = f.read(size)
        ctx = UserContext(size)
        ctx.buffer[:] = data
        fs = LittleFS(ctx, block_count=size // SECTOR, mount=False, **_LFS)
        try:
            fs.mount()
        except LittleFSError:
            if not write:
                return None, None, None
            fs.format()   # blank or corrupt: format it, as the board's firmware would at boot
            fs.mount()
        return fs, ctx, data

    def _close_fs(self, fs, ctx, before):
        fs.unmount()
        after = bytes(ctx.buffer)
        off, _ = fs_region(self.spec)
        with open(self.image, "r+b") as f:
            for i in range(0, len(after), SECTOR):   # only the blocks that changed
                if after[i:i + SECTOR] != before[i:i + SECTOR]:
                    f.seek(off + i)
                    f.write(after[i:i + SECTOR])

    def run(self, fn, write=False):
        """fn(littlefs.LittleFS) on the filesystem; written back when `write`."""
        self.create()
        fs, ctx, before = self._open_fs(write)
        if fs is None:
            return fn(None)
        try:
            out = fn(fs)
        finally:
            if write:
                self._close_fs(fs, ctx, before)
        return out

    def put_tree(self, src, dest="/"):
        """Copy a host directory's files into the filesystem (what `mpremote cp -r` would do)."""
        src = Path(src)
        items = sorted(p for p in src.rglob("*"))

        def go(fs):
            for p in items:
                target = str(PurePosixPath(dest) / p.relative_to(src).as_posix())
                if p.is_dir():
                    _makedirs(fs, target)
                else:
                    _makedirs(fs, str(PurePosixPath(target).parent))
                    with fs.open(target, "wb") as f:
                        f.write(p.read_bytes())
        self.run(go, write=True)


def _write_new(path, data):
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _makedirs(fs, path):
    if path in ("", "/"):
        return
    try:
        fs.makedirs(path, exist_ok=True)
    except Exception as e:  # littlefs-python raises its own error types
        raise CLIError(f"cannot make {path} on the board's flash: {e}")


def _stat(fs, path):
    from littlefs import LittleFSError
    if fs is None:
        return None
    try:
        return fs.stat(path)
    except LittleFSError:
        return None


class FlashPath:
    """A path on the board's filesystem, with the pathlib methods tests use."""

    def __init__(self, image, path):
        self.image = image
        self.path = str(PurePosixPath("/") / path)

    def __truediv__(self, other):
        return FlashPath(self.image, str(PurePosixPath(self.path) / str(other)))

    def __fspath__(self):
        raise TypeError("a FlashPath is on the board's flash, not on the host")

    def __repr__(self):
        return f"FlashPath({self.path!r} on {self.image.image})"

    def __eq__(self, other):
        return isinstance(other, FlashPath) and other.path == self.path and other.image.image == self.image.image

    def __hash__(self):
        return hash(self.path)

    @property
    def name(self):
        return PurePosixPath(self.path).name

    @property
    def parent(self):
        return FlashPath(self.image, str(PurePosixPath(self.path).parent))

    def with_name(self, name):
        return FlashPath(self.image, str(PurePosixPath(self.path).with_name(name)))

    def exists(self):
        return self.image.run(lambda fs: _stat(fs, self.path) is not None)

    def is_file(self):
        st = self.image.run(lambda fs: _stat(fs, self.path))
        return st is not None and st.type == 1

    def is_dir(self):
        st = self.image.run(lambda fs: _stat(fs, self.path))
        return st is not None and st.type == 2

    def read_bytes(self):
        def go(fs):
            if _stat(fs, self.path) is None:
                raise FileNotFoundError(self.path)
            with fs.open(self.path, "rb") as f:
                return f.read()
        return self.image.run(go)

    def read_text(self):
        return self.read_bytes().decode()

    def write_bytes(self, data):
        def go(fs):
            with fs.open(self.path, "wb") as f:
                f.write(bytes(data))
        self.image.run(go, write=True)
        return len(data)

    def write_text(self, text):
        return self.write_bytes(text.encode())

    def mkdir(self, parents=False, exist_ok=False):
        def go(fs):
            if _stat(fs, self.path) is not None:
                if exist_ok:
                    return
                raise FileExistsError(self.path)
            if parents:
                fs.makedirs(self.path, exist_ok=True)
            else:
                fs.mkdir(self.path)
        self.image.run(go, write=True)

    def unlink(self, missing_ok=False):
        def go(fs):
            st = _stat(fs, self.path)
            if st is None:
                if missing_ok:
                    return
                raise FileNotFoundError(self.path)
            if st.type == 2:
                raise IsADirectoryError(self.path)
            fs.remove(self.path)
        self.image.run(go, write=True)

    def rmdir(self):
        self.image.run(lambda fs: fs.remove(self.path), write=True)

    def iterdir(self):
        names = self.image.run(lambda fs: [] if _stat(fs, self.path) is None else fs.listdir(self.path))
        return [self / n for n in sorted(names)]

    def listdir(self):
        return [p.name for p in self.iterdir()]
