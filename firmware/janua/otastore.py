"""Flash state of the OTA flow: the filesystem calls the slots need, JSON files that survive a cut
rename, and the anti-rollback counter in two alternating CRC-checked records.

The atomic JSON write itself is store.py's (one implementation for every file janua keeps). This
module does not decide anything about updates; ota.py does.
"""

from micropython import const
from janua import OTAError, StoreError
from janua.store import PosixFS, write_json, read_json as _read_json  # noqa: F401 (write_json re-exported)

_CTR = "ota_ctr."
_CTR_MAGIC = b"JOTA"
_MAX_JSON = const(4096)


class FlashFS(PosixFS):
    """PosixFS plus the directory calls the slots need."""

    def mkdir(self, path):
        import os
        os.mkdir(path)

    def rmdir(self, path):
        import os
        os.rmdir(path)

    def ilistdir(self, path):
        import os
        return list(os.ilistdir(path))


def wipe(fs, d):
    """Remove the directory d and everything under it (no error when it does not exist)."""
    try:
        entries = fs.ilistdir(d)
    except OSError:
        return
    for e in entries:
        p = d + "/" + e[0]
        if e[1] == 0x4000:
            wipe(fs, p)
        else:
            fs.remove(p)
    fs.rmdir(d)


def size(f):
    """The length of an open file (left at its start)."""
    n = f.seek(0, 2)
    f.seek(0)
    return n


def read_json(fs, path, default=None):
    """The JSON at path (or at path.tmp when a rename was cut short), else `default`."""
    for p in (path, path + ".tmp"):
        try:
            obj = _read_json(fs, p, _MAX_JSON)
        except StoreError:
            continue
        if obj is not None:
            return obj
    return default


def crc32(data):
    # CRC-32 (IEEE 802.3, reflected, as zlib): a few records of 12 bytes, so bitwise is enough.
    c = 0xFFFFFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
    return c ^ 0xFFFFFFFF


class Counter:
    """The anti-rollback counter in two alternating records: magic | seq u32 | value u32 | crc32.

    A write goes to the record that does not hold the newest value, so a power cut can corrupt
    only the record being written; the CRC rejects it and the other one still holds the old value.
    The value never decreases (write() refuses). Two records present but both corrupt: fail closed.
    """

    def __init__(self, fs, root=""):
        self.fs = fs
        self.path = root + _CTR

    def _records(self):
        out = []
        present = 0
        for i in (0, 1):
            try:
                f = self.fs.open(self.path + str(i), "rb")
            except OSError:
                continue
            present += 1
            try:
                r = f.read(17)
            finally:
                f.close()
            if len(r) == 16 and r[:4] == _CTR_MAGIC and int.from_bytes(r[12:], "little") == crc32(r[:12]):
                out.append((int.from_bytes(r[4:8], "little"), int.from_bytes(r[8:12], "little"), i))
        if present and not out:
            raise OTAError("anti-rollback counter records are corrupt: updates refused")
        return out

    def read(self):
        recs = self._records()
        return max(recs)[1] if recs else 0

    def write(self, value):
        recs = self._records()
        seq, old, slot = max(recs) if recs else (0, 0, 1)
        if value < old:
            raise OTAError("the anti-rollback counter never decreases")
        if value == old and recs:
            return
        body = _CTR_MAGIC + (seq + 1).to_bytes(4, "little") + value.to_bytes(4, "little")
        f = self.fs.open(self.path + str(1 - slot), "wb")
        try:
            f.write(body + crc32(body).to_bytes(4, "little"))
            f.flush()
        finally:
            f.close()
        self.fs.sync()
