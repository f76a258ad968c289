"""Firmware-level OTA end to end on the virtual esp32: a `janua serve` subprocess publishes a
"firmware" release (an ESP image built here: header, esp_app_desc_t "v1.29.1", payload); the
board's OTA client (otaclient.poll(slots=otafw.FirmwareSlots(...)) -> janua.otafw.install) downloads it, verifies
it, streams it into ota_1 through esp32.Partition and sets it to boot. After a reset the emulated
ESP-IDF bootloader (boards/vboard/vb_esp32boot.py) boots ota_1 in PENDING_VERIFY; confirmed, the
otadata entry is VALID and stays; never confirmed, the next reset aborts it and ota_0 runs again."""

import json
import struct

import pytest

from tests.ota_verifier.test_ota_vboard_e2e import janua, widen
from tools import mpremote_util
from tools import ota as host
from tools import ota_release
from tools.api import API
from tools.demo import Verifier
from tools.vboard import VirtualBoard

pytestmark = pytest.mark.e2e

OTADATA_1 = 0xD000 + 4096
OTA_1 = 0x190000
POLL_FW = ("from janua import otaclient, otafw\nfrom janua.ota import AppSlots\n"
           "r, line = otaclient.poll(slots=otafw.FirmwareSlots(AppSlots()))\nprint(line)\n")
WHO = ("import os, json\nfrom esp32 import Partition\n"
       "print(json.dumps([os.uname().version, Partition(Partition.RUNNING).info()[4]]))\n")
CONFIRM = "from janua import otafw\nfrom janua.ota import AppSlots\nprint(otafw.confirm(AppSlots()))\n"


def esp_image(version, size=20000):
    # esp_image_header_t (magic 0xE9, 1 segment, DIO, 40 MHz/4 MB), a segment header, then
    # esp_app_desc_t at 0x20 (magic 0xABCD5432, version, project, time, date), then a payload
    desc = struct.pack("<IIII32s32s16s16s", 0xABCD5432, 0, 0, 0, version.encode(), b"micropython",
                       b"12:00:00", b"2026-07-01")
    head = bytes([0xE9, 1, 2, 0x20]) + bytes(20) + struct.pack("<II", 0x3F400020, size - 32)
    body = desc + bytes(range(256)) * ((size - 32 - len(desc)) // 256 + 1)
    return head + body[:size - 32]


def fw_bundle(tmp_path, signing, version, counter, image):
    app = tmp_path / f"fw-{version}"
    app.mkdir()
    (app / "micropython.bin").write_bytes(image)
    b = tmp_path / f"fwbundle-{version}"
    m = host.build_bundle(app, b, version, counter, boards=["esp32", "unix"], compile_py=False)
    m["kind"] = "firmware"
    (b / "manifest.json").write_bytes(host.encode_manifest(m))
    host.sign_bundle(b, signing["release"]["key"])
    return b


def otadata_1(vb):
    with open(vb.flash.image, "rb") as f:
        f.seek(OTADATA_1)
        return f.read(32).hex()


def ota_1_head(vb, n):
    with open(vb.flash.image, "rb") as f:
        f.seek(OTA_1)
        return f.read(n)


def who(port):
    return json.loads(mpremote_util.exec_(port, WHO).strip().splitlines()[-1])


@pytest.fixture
def served(tmp_path, signing):
    v = Verifier(tmp_path)
    try:
        api = API(v.url, token_file=str(v.token_file))
        api.call("PATCH", "/v1/tenant", {"policy": {"device_rate": {"capacity": 100, "refill_per_s": 10}}})
        ota_release.trust_key(api, signing["release"]["pub"], "release")
        with VirtualBoard("esp32", tmp_path / "flash") as vb:
            janua("flash", "--port", vb.port, "--board", "esp32")
            janua("provision", "--serial", "FW-1", "--port", vb.port, "--transport", "http",
                  "--server", v.url, "--token-file", str(v.token_file))
            kid, raw = host.load_public(signing["release"]["pub"])
            mpremote_util.write_file_atomic(vb.port, "ota.json", json.dumps(
                {"keys": {kid: raw.hex()}, "hw_version": 2}).encode())
            image = esp_image("v1.29.1")
            rel = ota_release.publish(api, fw_bundle(tmp_path, signing, "1.29.1-j1", 2, image))
            ro = ota_release.rollout(api, rel["id"], True)
            widen(v.db, ro["id"])
            yield vb, image
    finally:
        v.stop()


# otadata sector 1 after set_boot(ota_1): ota_seq 2, seq_label erased, state, crc32_le(~0, seq 2)
SEQ2 = "02000000" + "ff" * 20 + "%s" + "7437f655"


def install(vb, image):
    assert who(vb.port) == ["v1.29.0 on 2026-06-01", "ota_0"]       # the stock image on a blank chip
    out = mpremote_util.exec_(vb.port, POLL_FW)
    assert "installed 1.29.1-j1 (trial)" in out, out
    assert ota_1_head(vb, len(image)) == image
    assert otadata_1(vb) == SEQ2 % "00000000"                        # NEW
    vb.restart()
    assert who(vb.port) == ["v1.29.1 on 2026-07-01", "ota_1"]
    assert otadata_1(vb) == SEQ2 % "01000000"                        # PENDING_VERIFY


def test_firmware_release_downloaded_booted_and_confirmed(served):
    vb, image = served
    install(vb, image)
    out = mpremote_util.exec_(vb.port, CONFIRM)
    assert "'counter': 2" in out, out
    assert otadata_1(vb) == SEQ2 % "02000000"                        # VALID
    vb.restart()
    assert who(vb.port) == ["v1.29.1 on 2026-07-01", "ota_1"]
    assert otadata_1(vb) == SEQ2 % "02000000"
    # the board now reports the confirmed release: nothing more to install
    assert "janua ota: up to date" in mpremote_util.exec_(vb.port, POLL_FW)


def test_unconfirmed_firmware_rolled_back_by_the_bootloader(served):
    vb, image = served
    install(vb, image)
    vb.restart()                                                     # never confirmed
    assert who(vb.port) == ["v1.29.0 on 2026-06-01", "ota_0"]
    assert otadata_1(vb) == SEQ2 % "04000000"                        # ABORTED
    vb.restart()
    assert who(vb.port) == ["v1.29.0 on 2026-06-01", "ota_0"]
