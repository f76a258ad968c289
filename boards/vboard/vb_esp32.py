# The virtual esp32's `esp32` module (esp32.Partition) and its ESP-IDF second-stage bootloader
# (MicroPython code, host tooling for the virtual board; never installed on a device).
#
# Partition follows docs.micropython.org library/esp32.html and ports/esp32/esp32_partition.c
# (read: the v1.2x version with block_size and mark_app_valid_cancel_rollback): Partition(id,
# block_size=4096) with id BOOT, RUNNING or a label (app partitions searched first, then data);
# find(); info(); readblocks/writeblocks (no offset: erase then write; with offset: write only)
# and ioctl 1..6; set_boot(); get_next_update(); mark_app_valid_cancel_rollback(). Errors as the
# port raises them (mphalport.c check_esp_err_): OSError(-esp_err, "ESP_ERR_NAME"); a missing
# partition is OSError(ENOENT).
#
# The partition table is the profile's vboard.partitions on the emulated chip (vb_flashchip).
# otadata is ESP-IDF's: two 4 KiB sectors, each starting with an esp_ota_select_entry_t
# (ota_seq u32, seq_label[20], ota_state u32, crc u32 = crc32_le(UINT32_MAX, &ota_seq, 4), which
# is binascii.crc32(seq, 0xFFFFFFFF)); the active entry is the valid one with the larger seq and
# it selects app slot (seq - 1) % app_count (esp_ota_ops.c, bootloader_common.c,
# bootloader_utility.c). The firmware is taken to be built with
# CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE (janua's firmware OTA needs it): set_boot writes state NEW,
# the bootloader turns NEW into PENDING_VERIFY and boots it, and a PENDING_VERIFY found at boot
# (never confirmed) becomes ABORTED and the previous valid slot boots.
#
# Assumed or simplified (say so when it matters): an image is bootable when it starts with the
# ESP image magic 0xE9 (the real bootloader also checks segments, checksum and SHA-256); there is
# no factory partition (the profile's table has none), so a blank otadata boots ota_0 and the
# bootloader then writes otadata[0] = {seq 1, VALID} (set_actual_ota_seq); no anti-rollback
# eFuse, no secure boot, no flash encryption (info() reports encrypted False).

import binascii
import struct

_SECTOR = 4096
_ERRS = {-1: "ESP_FAIL", 0x102: "ESP_ERR_INVALID_ARG", 0x104: "ESP_ERR_INVALID_SIZE",
         0x105: "ESP_ERR_NOT_FOUND", 0x1503: "ESP_ERR_OTA_VALIDATE_FAILED"}
# esp_partition_type_t / subtype values (esp_partition.h)
_TYPES = {"app": 0x00, "data": 0x01}
_SUBTYPES = {"factory": 0x00, "test": 0x20, "ota": 0x00, "phy": 0x01, "nvs": 0x02, "coredump": 0x03,
             "nvs_keys": 0x04, "efuse": 0x05, "undefined": 0x06, "fat": 0x81, "spiffs": 0x82,
             "littlefs": 0x83}
for _i in range(16):
    _SUBTYPES["ota_%d" % _i] = 0x10 + _i
# esp_ota_img_states_t
NEW, PENDING_VERIFY, VALID, INVALID, ABORTED, UNDEFINED = 0, 1, 2, 3, 4, 0xFFFFFFFF
_BLANK = 0xFFFFFFFF
IMAGE_MAGIC = 0xE9
APP_DESC_MAGIC = 0xABCD5432

_ctx = None
_table = []         # (label, type, subtype, offset, size), in table order
_running = None     # the table entry the bootloader started


def _err(code):
    raise OSError(-code, _ERRS.get(code, "ESP_ERR_0x%x" % code))


def init(ctx):
    global _ctx
    _ctx = ctx
    del _table[:]
    for label, t, st, off, size in ctx.spec.get("partitions", ()):
        _table.append((label, _TYPES[t] if isinstance(t, str) else t,
                       _SUBTYPES[st] if isinstance(st, str) else st, off, size))


def _find(type, subtype=0xFF, label=None):
    return [p for p in _table if p[1] == type and (subtype == 0xFF or p[2] == subtype)
            and (label is None or p[0] == label)]


def _apps():
    # the OTA app slots, ota_0 first (what the bootloader indexes with seq - 1)
    return [p for s in range(0x10, 0x20) for p in _find(0x00, s)]


def _read(p, off, n):
    b = bytearray(n)
    _ctx.chip.read(p[3] + off, b)
    return b


# --- otadata ---------------------------------------------------------------------------------

def _otadata():
    return _find(0x01, 0x00)[0]


def _crc(seq):
    return binascii.crc32(struct.pack("<I", seq), _BLANK)


def read_entry(i):
    """Sector i of otadata as [ota_seq, seq_label, ota_state, crc] (as stored)."""
    raw = _read(_otadata(), i * _SECTOR, 32)
    seq, label, state, crc = struct.unpack("<I20sII", raw)
    return [seq, label, state, crc]


def _write_entry(i, e):
    # ESP-IDF's rewrite_ota_seq / the bootloader's write_otadata: erase the sector, write 32 bytes
    e[3] = _crc(e[0])
    base = _otadata()[3] + i * _SECTOR
    _ctx.chip.erase(base)
    _ctx.chip.program(base, struct.pack("<I20sII", e[0], e[1], e[2], e[3]))


def _invalid(e):
    # bootloader_common_ota_select_invalid
    return e[0] == _BLANK or e[2] == INVALID or e[2] == ABORTED


def _active(two):
    # bootloader_common_get_active_otadata: the valid entry (not invalid, crc right) with the
    # larger seq; None when neither is
    ok = [i for i in (0, 1) if not _invalid(two[i]) and two[i][3] == _crc(two[i][0])]
    if not ok:
        return None
    return max(ok, key=lambda i: two[i][0])


def _slot_of(seq):
    apps = _apps()
    return apps[(seq - 1) % len(apps)]


def _boot_entry():
    # esp_ota_get_boot_partition: the slot otadata selects; ota_0 when none (no factory here)
    two = [read_entry(0), read_entry(1)]
    a = _active(two)
    return _apps()[0] if a is None else _slot_of(two[a][0])


def bootable(p):
    return _read(p, 0, 1)[0] == IMAGE_MAGIC


# --- esp32.Partition -------------------------------------------------------------------------

class Partition:
    BOOT = 0
    RUNNING = 1
    TYPE_APP = 0x00
    TYPE_DATA = 0x01

    def __init__(self, id, block_size=_SECTOR, _entry=None):
        if _entry is not None:
            p = _entry
        elif isinstance(id, int):
            if id == Partition.BOOT:
                p = _boot_entry()
            elif id == Partition.RUNNING:
                p = _running
            else:
                raise ValueError
        else:
            f = _find(0x00, 0xFF, id) or _find(0x01, 0xFF, id)
            p = f[0] if f else None
        if p is None:
            raise OSError(2)  # MP_ENOENT, as esp32_partition_new
        self._p = p
        self.block_size = block_size

    @staticmethod
    def find(type=0x00, subtype=0xFF, label=None, block_size=_SECTOR):
        return [Partition(None, block_size, p) for p in _find(type, subtype, label)]

    def __eq__(self, other):
        return isinstance(other, Partition) and self._p == other._p

    def __repr__(self):
        p = self._p
        return "<Partition type=%u, subtype=%u, address=%u, size=%u, label=%s, encrypted=0>" % (
            p[1], p[2], p[3], p[4], p[0])

    def info(self):
        p = self._p
        return (p[1], p[2], p[3], p[4], p[0], False)

    def _range(self, off, n, erase=False):
        # esp_partition_read/write/erase_range's checks, in their order (from memory of
        # esp_partition.c: start past the end INVALID_ARG, end past it or a partial sector
        # INVALID_SIZE, an unaligned start INVALID_ARG)
        if off > self._p[4]:
            _err(0x102)
        if off + n > self._p[4] or (erase and n % _SECTOR):
            _err(0x104)
        if erase and off % _SECTOR:
            _err(0x102)
        return self._p[3] + off

    def readblocks(self, block, buf, offset=0):
        a = self._range(block * self.block_size + offset, len(buf))
        _ctx.chip.read(a, buf)

    def writeblocks(self, block, buf, offset=None):
        chip = _ctx.chip
        off = block * self.block_size
        n = len(buf)
        if offset is None:
            if self.block_size >= _SECTOR:
                a = self._range(off, n, True)
                for s in range(a, a + n, _SECTOR):
                    chip.erase(s)
            else:
                # smaller blocks: keep the rest of each sector (the port's read-erase-rewrite cache)
                self._range(off, n)
                s = off - off % _SECTOR
                while s < off + n:
                    keep = _read(self._p, s, _SECTOR)
                    chip.erase(self._p[3] + s)
                    if s < off:
                        chip.program(self._p[3] + s, memoryview(keep)[:off - s])
                    top = off + n
                    if top < s + _SECTOR:
                        chip.program(self._p[3] + top, memoryview(keep)[top - s:])
                    s += _SECTOR
        else:
            off += offset
        chip.program(self._range(off, n), buf)

    def ioctl(self, op, arg):
        if op in (1, 2, 3):
            return 0
        if op == 4:
            return self._p[4] // self.block_size
        if op == 5:
            return self.block_size
        if op == 6:
            if self.block_size != _SECTOR:
                return -22  # -MP_EINVAL
            _ctx.chip.erase(self._range(arg * _SECTOR, _SECTOR, True))
            return 0
        return None

    def set_boot(self):
        # esp_ota_set_boot_partition -> esp_rewrite_ota_data (factory: erase otadata; none here)
        p = self._p
        apps = _apps()
        if p not in apps:
            _err(0x102)
        if not bootable(p):
            _err(0x1503)  # esp_image_verify failed: ESP_ERR_OTA_VALIDATE_FAILED
        two = [read_entry(0), read_entry(1)]
        a = _active(two)
        n = len(apps)
        sub = apps.index(p)
        if a is None:
            nxt, seq = 0, sub + 1
        else:
            cur, i = two[a][0], 0
            while cur > (sub + 1) % n + i * n:
                i += 1
            nxt, seq = a ^ 1, (sub + 1) % n + i * n
        e = two[nxt]
        e[0], e[2] = seq, NEW    # NEW: CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE (else UNDEFINED)
        _write_entry(nxt, e)

    def get_next_update(self):
        # esp_ota_get_next_update_partition(self): the OTA slot after this one, wrapping
        apps = _apps()
        i = apps.index(self._p) + 1 if self._p in apps else 0
        return Partition(None, _SECTOR, apps[i % len(apps)] if apps else None)

    @classmethod
    def mark_app_valid_cancel_rollback(cls):
        # esp_ota_mark_app_valid_cancel_rollback -> esp_ota_current_ota_is_workable(true): the
        # active entry must select the running slot; VALID is written only if it is not already
        two = [read_entry(0), read_entry(1)]
        a = _active(two)
        if a is None or _slot_of(two[a][0]) != _running:
            _err(-1)   # "Running firmware is factory" (assumed also when the slot is not active)
        if two[a][2] != VALID:
            two[a][2] = VALID
            _write_entry(a, two[a])


def bootloader(ctx):
    # ESP-IDF's second-stage bootloader at every hard boot (vb_esp32boot.py) picks the slot. A soft
    # reset (JANUA_VBOARD_SOFT) restarts MicroPython only: the same image keeps running, so the
    # slot is kept beside the flash image (<flash>.slot, as RAM that survives a soft reset).
    global _running
    import vb_esp32boot
    _running = vb_esp32boot.boot(ctx, __import__("vb_esp32"), ctx.env["JANUA_VBOARD_FLASH"] + ".slot",
                                 bool(ctx.env.get("JANUA_VBOARD_SOFT")))
