# The virtual esp32's second-stage bootloader and its application image format (MicroPython code,
# host tooling for the virtual board; never installed on a device). vb_esp32.bootloader() calls
# boot() at every boot, before the filesystem is mounted and before any board code runs.
#
# What it does, after ESP-IDF's bootloader_utility.c (bootloader_utility_get_selected_boot_partition,
# bootloader_utility_load_boot_image, set_actual_ota_seq) with CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE:
# 1. a blank chip (both otadata sectors erased, nothing bootable in ota_0) first gets the stock
#    firmware, as flashing it would: app_image("v1.29.0") in ota_0;
# 2. every otadata entry in PENDING_VERIFY (a new image that booted and never confirmed) becomes
#    ABORTED: that is the rollback;
# 3. the active entry (vb_esp32._active) selects the slot; an entry in NEW becomes PENDING_VERIFY;
#    no active entry: ota_0, and when otadata was blank otadata[0] = {seq 1, VALID} is written;
# 4. the slot is loaded if bootable (starts with the image magic 0xE9), else the slots before it
#    down to ota_0, then the ones after it (the real bootloader's search order);
# 5. os.uname() then reports the running image's esp_app_desc_t: version = "<desc.version> on
#    <desc.date>", release = desc.version without its "v" (an assumption: MicroPython builds its
#    uname from its own git tag and build date, which the stock image's app descriptor carries too).
#
# The image: esp_image_header_t (24 bytes: magic 0xE9, segment count, SPI mode/speed/size, entry
# address, the extended header with chip id 0 = ESP32), one esp_image_segment_header_t (8 bytes),
# then at offset 0x20 esp_app_desc_t (magic 0xABCD5432, secure_version, version[32],
# project_name[32], time[16], date[16], idf_ver[32], app_elf_sha256[32], reserved to 256 bytes)
# (esp_app_format.h, esp_app_desc.h). Checksums and the appended SHA-256 are not emulated.

import struct

DESC_OFFSET = 0x20


def _s(text, n):
    b = text.encode()[:n - 1]
    return b + bytes(n - len(b))


def app_image(version, project="micropython", date="2026-06-01", payload=b""):
    """An application image: header, one segment holding the app descriptor, then `payload`."""
    desc = struct.pack("<IIII", 0xABCD5432, 0, 0, 0) + _s(version, 32) + _s(project, 32) + \
        _s("00:00:00", 16) + _s(date, 16) + _s("v5.2.2", 32) + bytes(32)
    desc += bytes(256 - len(desc))
    seg = desc + payload
    hdr = struct.pack("<BBBBI", 0xE9, 1, 2, 0x20, 0x40080000)       # DIO, 40 MHz, 4 MB
    ext = struct.pack("<BBBBHBHH", 0xEE, 0, 0, 0, 0, 0, 0, 0xFFFF) + bytes(4) + b"\x00"
    return hdr + ext + struct.pack("<II", 0x3F400020, len(seg)) + seg


def app_desc(m, p):
    """(version, project, date) of the image in partition entry p, or None."""
    raw = m._read(p, DESC_OFFSET, 0x90)
    if struct.unpack("<I", raw[:4])[0] != 0xABCD5432:
        return None

    def text(a, n):
        t = bytes(raw[a:a + n])
        return t[:t.find(b"\0")].decode() if b"\0" in t else t.decode()
    return text(16, 32), text(48, 32), text(96, 16)


def _program(ctx, addr, data):
    for a in range(addr, addr + len(data), 4096):
        ctx.chip.erase(a)
    ctx.chip.program(addr, data)


def boot(ctx, m, slot_file, soft):
    apps = m._apps()
    if soft:
        try:
            with open(slot_file) as f:
                label = f.read()
            for p in apps:
                if p[0] == label:
                    _uname(ctx, m, p)
                    return p
        except OSError:
            pass        # no record: boot as after a hard reset
    p = _select(ctx, m, apps)
    with open(slot_file, "w") as f:
        f.write(p[0])
    _uname(ctx, m, p)
    return p


def _select(ctx, m, apps):
    two = [m.read_entry(0), m.read_entry(1)]
    if two[0][0] == m._BLANK and two[1][0] == m._BLANK and not m.bootable(apps[0]):
        _program(ctx, apps[0][3], app_image("v1.29.0"))
    for i in (0, 1):
        if two[i][2] == m.PENDING_VERIFY:
            two[i][2] = m.ABORTED
            m._write_entry(i, two[i])
    initial = False
    a = m._active(two)
    if a is None:
        start = 0
        initial = all(e[0] == m._BLANK or e[3] != m._crc(e[0]) for e in two)
    else:
        start = (two[a][0] - 1) % len(apps)
        if two[a][2] == m.NEW:
            two[a][2] = m.PENDING_VERIFY
            m._write_entry(a, two[a])
    for i in list(range(start, -1, -1)) + list(range(start + 1, len(apps))):
        if m.bootable(apps[i]):
            if initial:
                m._write_entry(0, [i + 1, b"\xff" * 20, m.VALID, 0])
            return apps[i]
    raise RuntimeError("boot: no bootable app partitions")


def _uname(ctx, m, p):
    d = app_desc(m, p)
    base = ctx.spec.get("uname")
    if d is None or not base:
        return
    u = ctx.Uname([base[0], base[1], d[0].lstrip("v"), "%s on %s" % (d[0], d[2]), base[4]])
    ctx.uname = lambda: u
