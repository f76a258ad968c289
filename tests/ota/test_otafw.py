"""The ESP32 firmware backend (janua.otafw) on the unix port against a partition-shaped fake
(unix heap: the fake keeps the partition in RAM).
The real esp32.Partition path is untested here: no hardware."""

import hashlib
import json

from tools import ota as host

FAKE = """
import json
from janua import OTAError
from janua.ota import AppSlots
from janua import otafw

class FakePartition:
    # esp32.Partition's shape: 4 KiB blocks, writeblocks erases then writes a whole block.
    RUNNING = 0
    booted = []
    valid = []
    def __init__(self, nblocks):
        self.data = bytearray(b"\\xff" * (nblocks * 4096))
        self.n = nblocks
    def get_next_update(self):
        return NEXT
    def ioctl(self, op, arg):
        return {4: self.n, 5: 4096}[op]
    def writeblocks(self, block, buf):
        if len(buf) != 4096:
            raise OSError(22)
        self.data[block * 4096:(block + 1) * 4096] = buf
    def readblocks(self, block, buf, off=0):
        a = block * 4096 + off
        buf[:] = self.data[a:a + len(buf)]
    def set_boot(self):
        FakePartition.booted.append(self)
    @classmethod
    def mark_app_valid_cancel_rollback(cls):
        cls.valid.append(True)

NEXT = FakePartition(%d)
RUN = FakePartition(4)
s = AppSlots()
try:
    f = open("fw.bin", "rb")
    m = otafw.install(s, open("manifest.json", "rb").read(), open("manifest.sig", "rb").read(), f,
                      device={"board": "esp32", "hw": 2, "mp": (1, 29, 0)}, running=RUN)
    import hashlib
    img = NEXT.data[:m["files"][0]["size"]]
    print(json.dumps({"ok": m["version"], "booted": len(FakePartition.booted),
                      "sha": hashlib.sha256(img).digest().hex(), "pad": NEXT.data[m["size"]:m["size"] + 8].hex()}))
    otafw.confirm(s, FakePartition)
    print(json.dumps({"valid": FakePartition.valid, "counter": s.counter.read()}))
except OTAError as e:
    print(json.dumps({"rejected": str(e), "booted": len(FakePartition.booted)}))
"""


def _fw_release(tmp_path, keys, image, counter=5, tamper=False):
    (tmp_path / "fwapp").mkdir(exist_ok=True)
    (tmp_path / "fwapp" / "micropython.bin").write_bytes(image)
    b = tmp_path / "fwbundle"
    m = host.build_bundle(tmp_path / "fwapp", b, "1.29.1-j1", counter, compile_py=False)
    m["kind"] = "firmware"
    (b / "manifest.json").write_bytes(host.encode_manifest(m))
    host.sign_bundle(b, keys["key"])
    return b, (image[:-1] + b"\x00" if tamper else image)


def _setup(mp, keys, bundle, image):
    from ota_helpers import ota_config
    (mp.flash / "ota.json").write_text(json.dumps(ota_config(keys)))
    (mp.flash / "manifest.json").write_bytes((bundle / "manifest.json").read_bytes())
    (mp.flash / "manifest.sig").write_bytes((bundle / "manifest.sig").read_bytes())
    (mp.flash / "fw.bin").write_bytes(image)


def test_firmware_image_streamed_to_partition_and_confirmed(mp, keys, tmp_path):
    image = bytes(range(256)) * 70 + b"tail"        # 17924 bytes: 4 full blocks and a short one
    b, img = _fw_release(tmp_path, keys, image)
    _setup(mp, keys, b, img)
    out = mp(FAKE % 8, board="unix")
    assert out[0] == {"ok": "1.29.1-j1", "booted": 1, "sha": hashlib.sha256(image).hexdigest(), "pad": "ff" * 8}
    assert out[1] == {"valid": [True], "counter": 5}


def test_tampered_image_is_not_booted(mp, keys, tmp_path):
    b, img = _fw_release(tmp_path, keys, b"\x01" * 9000, tamper=True)
    _setup(mp, keys, b, img)
    out = mp(FAKE % 8, board="unix")[0]
    assert out == {"rejected": "digest mismatch", "booted": 0}


def test_image_larger_than_partition_rejected(mp, keys, tmp_path):
    b, img = _fw_release(tmp_path, keys, b"\x02" * 9000)
    _setup(mp, keys, b, img)
    out = mp(FAKE % 2, board="unix")[0]
    assert "does not fit" in out["rejected"] and out["booted"] == 0
