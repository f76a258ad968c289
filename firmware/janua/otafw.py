"""ESP32 full-firmware updates through esp32.Partition, with the same verifier as app updates.

A release of kind "firmware" lists exactly one file, the application image (`micropython.bin`).
`install()` verifies the manifest (signature, fields, compatibility, anti-rollback counter),
streams the image into the next OTA partition one 4 KiB block at a time while hashing
(manifest.copy_verified), reads the partition back to check the digest, then `set_boot()`. The
caller resets. The new firmware calls `confirm()` (mark_app_valid_cancel_rollback, then the
counter is committed); if it never does, the ESP-IDF bootloader returns to the old partition on
the next reset (this needs CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE in the firmware's sdkconfig).

The verifier offers firmware releases to `otaclient.poll(slots=FirmwareSlots(AppSlots()))`, which downloads the
manifest and signature and hands install() an open_src(path) for the image; the update check
reports running_version() (the last confirmed release). Outcome events ("confirmed",
"rolled_back") are not sent for firmware releases yet.

UNTESTED ON HARDWARE. It now runs end to end on the virtual esp32's emulated partitions
(boards/vboard/vb_esp32.py: esp32.Partition, ESP-IDF's otadata and an emulated bootloader with
rollback; tests/ota_verifier/test_otafw_vboard.py: download from a live verifier, verify,
set_boot, reset into ota_1, confirm; and an unconfirmed image rolled back at the next reset), and
against a partition-shaped fake (tests/ota/test_otafw.py). `running` is injectable: anything with
get_next_update() returning readblocks/writeblocks/ioctl/set_boot.
"""

from janua import OTAError
from janua.manifest import verify_manifest, check_compat, copy_verified

_BLOCK = 4096


def _running():
    from esp32 import Partition
    return Partition(Partition.RUNNING)


class _Sink:
    # Whole blocks to the partition; copy_verified hands over full 4 KiB buffers but the last.
    def __init__(self, part):
        self.part = part
        self.block = 0

    def write(self, chunk):
        n = len(chunk)
        if n < _BLOCK:
            b = bytearray(_BLOCK)  # the last, short block: pad with erased-flash bytes
            b[:n] = chunk
            for i in range(n, _BLOCK):
                b[i] = 0xFF
            chunk = b
        self.part.writeblocks(self.block, chunk)
        self.block += 1


class _Reader:
    # readinto over the first `size` bytes of a partition (readblocks with a byte offset).
    def __init__(self, part, size):
        self.part = part
        self.left = size
        self.pos = 0

    def readinto(self, buf):
        n = min(len(buf), self.left)
        if n <= 0:
            return 0
        if n < len(buf):
            buf = memoryview(buf)[:n]
        self.part.readblocks(self.pos // _BLOCK, buf, self.pos % _BLOCK)
        self.pos += n
        self.left -= n
        return n


def install(slots, manifest_bytes, sig_bytes, src, device=None, probe=None, running=None, buf=None):
    """Verify a firmware release and write it to the next OTA partition; returns the manifest.
    `slots` is an ota.AppSlots (keys, counter and reports live on the filesystem). `src` is the
    image stream (readinto), or open_src(path) returning one, called after the manifest verified.
    `buf`: the 4 KiB stream buffer, else taken once the signature is checked (Ed25519 needs the heap)."""
    try:
        cfg = slots.config()
        m = verify_manifest(manifest_bytes, sig_bytes, slots.keys(cfg))
        if m.get("kind") != "firmware" or len(m["files"]) != 1:
            raise OTAError("not a firmware release (kind firmware, one image file)")
        from janua.ota import device_info
        check_compat(m, device or device_info(cfg), probe)
        stored = slots.counter.read()
        if m["counter"] < stored:
            raise OTAError("downgrade: security counter %d < %d" % (m["counter"], stored))
        img = m["files"][0]
        if callable(src):
            src = src(img["path"])   # opened only once the manifest verified (otaclient's download)
        part = (running or _running()).get_next_update()
        if img["size"] > part.ioctl(4, 0) * part.ioctl(5, 0):
            raise OTAError("image of %d bytes does not fit the partition" % img["size"])
        if buf is None:
            import gc
            gc.collect()
            buf = bytearray(_BLOCK)
        copy_verified(src, _Sink(part).write, img["size"], img["sha256"], buf)
        copy_verified(_Reader(part, img["size"]), None, img["size"], img["sha256"], buf)
    except OTAError as e:
        slots.report("rejected", reason=str(e))
        raise
    part.set_boot()
    slots.report("installed", version=m["version"], kind="firmware", counter=m["counter"])
    from janua.ota import write_json
    write_json(slots.fs, slots.p("ota_fw.json"), {"version": m["version"], "counter": m["counter"]})
    return m


def confirm(slots, partition_cls=None):
    """The new firmware booted and authenticated: cancel the bootloader rollback, commit."""
    if partition_cls is None:
        from esp32 import Partition as partition_cls
    partition_cls.mark_app_valid_cancel_rollback()
    from janua.ota import read_json
    fw = read_json(slots.fs, slots.p("ota_fw.json"), {}) or {}
    c = fw.get("counter", 0)
    if c > slots.counter.read():
        slots.counter.write(c)
    if fw.get("version") and not fw.get("confirmed"):
        fw["confirmed"] = True   # the version the update check reports from now on
        from janua.ota import write_json
        write_json(slots.fs, slots.p("ota_fw.json"), fw)
    return fw


def running_version(slots):
    """The firmware release this board runs, as the update check reports it: the last one
    confirmed, or None (the stock firmware, or an image set to boot and not yet confirmed)."""
    from janua.ota import read_json
    fw = read_json(slots.fs, slots.p("ota_fw.json"), {}) or {}
    return fw.get("version") if fw.get("confirmed") else None


class FirmwareSlots:
    """The application slots as janua.otaclient sees them for a firmware release:
    `otaclient.poll(slots=FirmwareSlots(AppSlots()))`. The update check asks for kind "firmware" with
    the running firmware's version, install() streams the image into the next OTA partition and sets
    it to boot (the caller resets; the new firmware calls confirm()); the rest is the app slots'."""

    def __init__(self, slots):
        self._s = slots

    def __getattr__(self, name):
        return getattr(self._s, name)

    def pointer(self):
        return {"kind": "firmware", "version": running_version(self._s)}

    def install(self, m, sig, open_src, buf=None, before_switch=None):
        return install(self._s, m, sig, open_src, buf=buf)
