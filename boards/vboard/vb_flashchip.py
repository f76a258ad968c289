# The virtual board's flash chip: NOR flash in a host file, 4 KiB erase sectors (MicroPython code,
# host tooling for the virtual board; never installed on a device).
#
# - erase(addr) sets the 4 KiB sector at `addr` to 0xFF and counts it in the wear file (one
#   little-endian uint32 per sector, kept beside the image so that wear survives power cycles and
#   a benchmark can read it from the host).
# - program(addr, data) programs like NOR flash: a bit can only go from 1 to 0 (new = old & data),
#   so a write to a sector that was not erased shows up as corrupt data, as it would on a chip.
# - Window(chip, offset, size) is one partition as a MicroPython block device (readblocks,
#   writeblocks, ioctl: the extended interface vfs.VfsLfs2 and esp32.Partition use).
# - A power cut: `cut` counts the chip's write operations (each erase and each program call) and at
#   the cut-th one calls die() instead of finishing it. With `torn`, the interrupted operation is
#   half done first (half the bytes programmed, half the sector erased), as a cut in the middle of a
#   page program or a sector erase can leave it.
# It keeps no cache: every operation goes straight to the host file, so the host can read a
# consistent image whenever the board is idle.

_SECTOR = 4096
_CHUNK = 256


class FlashChip:
    def __init__(self, path, size, wear_path=None, cut=0, torn=False, die=None):
        self.f = open(path, "r+b")
        self.size = size
        self.wear = open(wear_path, "r+b") if wear_path else None
        self.cut = cut          # 0: no cut armed
        self.torn = torn
        self.die = die
        self.ops = 0            # write operations (erases + programs) since boot
        self.erases = 0
        self._old = bytearray(_CHUNK)
        self._w = bytearray(4)

    def _check(self, addr, n):
        if addr < 0 or addr + n > self.size:
            raise OSError(22)   # EINVAL, as the flash driver refuses an address off the chip

    def _tick(self):
        # True when this operation is the one the power cut interrupts.
        self.ops += 1
        return self.cut and self.ops == self.cut

    def _cut(self):
        if self.die is not None:
            self.die()
        raise OSError(5)  # not reached with a die(); EIO otherwise

    def read(self, addr, buf):
        self._check(addr, len(buf))
        self.f.seek(addr)
        self.f.readinto(buf)

    def erase(self, addr):
        if addr % _SECTOR:
            raise OSError(22)
        self._check(addr, _SECTOR)
        cut = self._tick()
        ff = b"\xff" * _CHUNK
        n = _SECTOR // 2 if cut else _SECTOR
        if cut and not self.torn:
            n = 0
        self.f.seek(addr)
        for _ in range(n // _CHUNK):
            self.f.write(ff)
        if cut:
            self._cut()
        self.erases += 1
        if self.wear is not None:
            w = self._w
            pos = (addr // _SECTOR) * 4
            self.wear.seek(pos)
            if self.wear.readinto(w) != 4:
                w[0] = w[1] = w[2] = w[3] = 0
            c = (w[0] | (w[1] << 8) | (w[2] << 16) | (w[3] << 24)) + 1
            w[0], w[1], w[2], w[3] = c & 255, (c >> 8) & 255, (c >> 16) & 255, (c >> 24) & 255
            self.wear.seek(pos)
            self.wear.write(w)

    def program(self, addr, data):
        n = len(data)
        self._check(addr, n)
        cut = self._tick()
        if cut:
            n = n // 2 if self.torn else 0
        mv = memoryview(data)
        old = self._old
        done = 0
        while done < n:
            k = min(_CHUNK, n - done)
            o = memoryview(old)[:k]
            self.f.seek(addr + done)
            self.f.readinto(o)
            for i in range(k):
                old[i] &= mv[done + i]
            self.f.seek(addr + done)
            self.f.write(o)
            done += k
        if cut:
            self._cut()


class Window:
    """One partition of the chip as a block device (blocks of `block` bytes from `offset`)."""

    def __init__(self, chip, offset, size, block=_SECTOR):
        self.chip = chip
        self.offset = offset
        self.size = size
        self.block = block

    def readblocks(self, n, buf, off=0):
        self.chip.read(self.offset + n * self.block + off, buf)

    def writeblocks(self, n, buf, off=None):
        addr = self.offset + n * self.block
        if off is None:
            # The simple interface: erase the blocks, then program them.
            for a in range(addr, addr + len(buf), _SECTOR):
                self.chip.erase(a)
            off = 0
        if n * self.block + off + len(buf) > self.size:
            raise OSError(22)
        self.chip.program(addr + off, buf)

    def ioctl(self, op, arg):
        if op == 4:   # block count
            return self.size // self.block
        if op == 5:   # block size
            return self.block
        if op == 6:   # erase block `arg`
            self.chip.erase(self.offset + arg * self.block)
            return 0
        return 0      # init (1), deinit (2), sync (3): nothing to do, writes are not cached
