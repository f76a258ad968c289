"""esp32.Partition and the emulated ESP-IDF bootloader (boards/vboard/vb_esp32.py, vb_esp32boot.py)
on the MicroPython unix port with the esp32 profile's emulated flash. Each run is one boot: the
bootloader runs first, then the script. Expected otadata bytes are ESP-IDF's format written out by
hand (esp_ota_select_entry_t; crc32_le(UINT32_MAX, ota_seq): seq 1 -> 9a984347)."""

import json
import struct
import subprocess

import pytest

from tools.boards import load_profile, micropython_cmd
from tools.vboard_flash import FlashImage

OTADATA = 0xD000
OTA_0, OTA_1 = 0x10000, 0x190000
ERASED = "ff" * 20


def entry(seq, state, crc):
    # one otadata sector's first 32 bytes, as hex: ota_seq, seq_label (erased), ota_state, crc
    return seq + ERASED + state + crc


BLANK = "ff" * 32
SEQ1_VALID = entry("01000000", "02000000", "9a984347")
SEQ2 = "02000000" + ERASED + "%s" + "7437f655"


@pytest.fixture
def board(tmp_path):
    flash = FlashImage(tmp_path / "flash", load_profile("esp32"))

    def run(script, soft=False):
        path = tmp_path / "t.py"
        path.write_text("import json\nfrom esp32 import Partition\n" + script)
        argv, env = micropython_cmd("esp32", path, flash=flash, mount="/flash")
        if soft:
            env["JANUA_VBOARD_SOFT"] = "1"   # what the supervisor sets for a soft reset
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        return [json.loads(line) for line in r.stdout.splitlines() if line.startswith(("{", "[", "\""))]

    def chip(addr, n):
        with open(flash.image, "rb") as f:
            f.seek(addr)
            return f.read(n)

    run.chip = chip
    run.otadata = lambda: (chip(OTADATA, 32).hex(), chip(OTADATA + 4096, 32).hex())
    return run


IMAGE = """
def image(version):
    # an app image: header (magic 0xE9), segment header, esp_app_desc_t at 0x20
    import struct
    d = struct.pack("<IIII", 0xABCD5432, 0, 0, 0) + version.encode() + bytes(32 - len(version))
    d += b"micropython" + bytes(21) + bytes(16) + b"2026-07-01" + bytes(6)
    return b"\\xe9\\x01\\x02\\x20" + bytes(28) + d + bytes(4096 - 32 - len(d))
"""

STATE = """
import os
r = Partition(Partition.RUNNING).info()[4]
b = Partition(Partition.BOOT).info()[4]
print(json.dumps({"running": r, "boot": b, "version": os.uname().version, "release": os.uname().release}))
"""


def test_partition_table_is_the_profiles(board):
    out = board("""
print(json.dumps([p.info() for p in Partition.find()]))
print(json.dumps([p.info()[4] for p in Partition.find(Partition.TYPE_DATA)]))
print(json.dumps([p.info()[4] for p in Partition.find(Partition.TYPE_DATA, 0x81)]))
print(json.dumps([Partition("vfs").info(), Partition("otadata").info()[:2], Partition("ota_1").ioctl(4, 0)]))
for bad in ("nope", 7):
    try:
        Partition(bad)
    except (OSError, ValueError) as e:
        print(json.dumps([type(e).__name__, e.args[0] if e.args else None]))
""")
    assert out[0] == [[0, 0x10, 65536, 1572864, "ota_0", False], [0, 0x11, 1638400, 1572864, "ota_1", False]]
    assert out[1] == ["nvs", "otadata", "phy_init", "vfs"]
    assert out[2] == ["vfs"]
    assert out[3] == [[1, 0x81, 3211264, 983040, "vfs", False], [1, 0], 384]
    assert out[4:] == [["OSError", 2], ["ValueError", None]]


def test_writeblocks_erases_without_offset_and_programs_with_one(board):
    out = board("""
p = Partition("ota_1")
b = bytearray(4096)
def first(n=4):
    p.readblocks(1, b)
    return bytes(b[:n]).hex()
p.writeblocks(1, b"\\x0f" * 4096)
r = [first()]
p.writeblocks(1, b"\\xf0" * 4096)          # erase then write: f0
r.append(first())
p.writeblocks(1, b"\\x3c\\x3c", 1)         # no erase: NOR programming ANDs (f0 & 3c = 30)
r.append(first())
r.append(p.ioctl(6, 1))                   # erase block 1
r.append(first())
small = Partition("ota_1", 512)
small.writeblocks(9, b"\\x11" * 512)       # the sector's other 3.5 KiB are kept
p.readblocks(1, b)
r += [bytes(b[508:516]).hex(), bytes(b[1020:1028]).hex(), small.ioctl(4, 0), small.ioctl(5, 0), small.ioctl(6, 1)]
r.append([p.ioctl(1, 0), p.ioctl(2, 0), p.ioctl(3, 0), p.ioctl(4, 0), p.ioctl(5, 0)])
for f in (lambda: p.readblocks(385, b), lambda: p.readblocks(383, b, 1), lambda: p.writeblocks(384, b)):
    try:
        f()
    except OSError as e:
        r.append(list(e.args))
print(json.dumps(r))
""")[0]
    assert out[0] == "0f0f0f0f" and out[1] == "f0f0f0f0" and out[2] == "f03030f0"
    assert out[3] == 0 and out[4] == "ffffffff"
    assert out[5] == "ffffffff11111111" and out[6] == "11111111ffffffff"
    assert out[7:10] == [3072, 512, -22]
    assert out[10] == [0, 0, 0, 384, 4096]
    # esp_partition_read/erase_range: ESP_ERR_INVALID_ARG (0x102) starting past the end,
    # ESP_ERR_INVALID_SIZE (0x104) ending past it
    assert out[11:] == [[-258, "ESP_ERR_INVALID_ARG"], [-260, "ESP_ERR_INVALID_SIZE"], [-260, "ESP_ERR_INVALID_SIZE"]]


def test_blank_chip_first_boot_flashes_the_factory_image_into_ota_0(board):
    out = board(STATE)[0]
    assert out == {"running": "ota_0", "boot": "ota_0", "version": "v1.29.0 on 2026-06-01", "release": "1.29.0"}
    head = board.chip(OTA_0, 0x70)
    assert head[0] == 0xE9
    assert head[0x20:0x24] == bytes.fromhex("3254cdab")          # esp_app_desc_t magic 0xABCD5432
    assert head[0x30:0x38] == b"v1.29.0\x00"
    assert head[0x50:0x5C] == b"micropython\x00"
    assert board.chip(OTA_1, 16) == b"\xff" * 16
    # the bootloader wrote the initial otadata: seq 1, VALID (set_actual_ota_seq)
    assert board.otadata() == (SEQ1_VALID, BLANK)


def test_set_boot_writes_the_next_seq_as_new_and_the_bootloader_tries_it_once(board):
    out = board(IMAGE + """
n = Partition(Partition.RUNNING).get_next_update()
n.writeblocks(0, image("v1.29.1"))
n.set_boot()
print(json.dumps(Partition(Partition.BOOT).info()[4]))
""")
    assert out == ["ota_1"]
    assert board.otadata() == (SEQ1_VALID, SEQ2 % "00000000")                    # state NEW
    assert board(STATE)[0] == {"running": "ota_1", "boot": "ota_1", "version": "v1.29.1 on 2026-07-01",
                               "release": "1.29.1"}
    assert board.otadata() == (SEQ1_VALID, SEQ2 % "01000000")                    # PENDING_VERIFY
    # never confirmed: the next boot aborts it and runs the previous valid slot
    assert board(STATE)[0] == {"running": "ota_0", "boot": "ota_0", "version": "v1.29.0 on 2026-06-01",
                               "release": "1.29.0"}
    assert board.otadata() == (SEQ1_VALID, SEQ2 % "04000000")                    # ABORTED
    assert board(STATE)[0]["running"] == "ota_0"
    assert board.otadata() == (SEQ1_VALID, SEQ2 % "04000000")


def test_confirmed_image_stays_valid_across_boots(board):
    board(IMAGE + """
n = Partition(Partition.RUNNING).get_next_update()
n.writeblocks(0, image("v1.29.1"))
n.set_boot()
""")
    out = board(STATE + "Partition.mark_app_valid_cancel_rollback()\nPartition.mark_app_valid_cancel_rollback()\n")
    assert out[0]["running"] == "ota_1"
    assert board.otadata() == (SEQ1_VALID, SEQ2 % "02000000")                    # VALID
    assert board(STATE)[0]["running"] == "ota_1"
    assert board(STATE)[0]["version"] == "v1.29.1 on 2026-07-01"
    assert board.otadata() == (SEQ1_VALID, SEQ2 % "02000000")
    # and back to ota_0: seq 3 in sector 0 (the one after the active sector 1)
    board("Partition('ota_1').get_next_update().set_boot()\n")
    assert board.otadata() == (entry("03000000", "00000000", "11504aed"), SEQ2 % "02000000")


def test_set_boot_refuses_a_slot_without_an_image(board):
    out = board("""
try:
    Partition("ota_1").set_boot()
except OSError as e:
    print(json.dumps(list(e.args)))
try:
    Partition("vfs").set_boot()
except OSError as e:
    print(json.dumps(list(e.args)))
""")
    assert out == [[-0x1503, "ESP_ERR_OTA_VALIDATE_FAILED"], [-0x102, "ESP_ERR_INVALID_ARG"]]
    assert board.otadata() == (SEQ1_VALID, BLANK)


def test_a_selected_slot_that_is_not_bootable_falls_back_to_ota_0(board):
    board(IMAGE + """
n = Partition("ota_1")
n.writeblocks(0, image("v1.29.1"))
n.set_boot()
n.writeblocks(0, bytes(4096))          # the image is gone before the reset
""")
    assert board(STATE)[0]["running"] == "ota_0"
    # it was tried: NEW -> PENDING_VERIFY; the boot after marks it ABORTED
    assert board.otadata() == (SEQ1_VALID, SEQ2 % "01000000")


def test_mark_valid_on_the_already_valid_factory_slot_writes_nothing(board):
    out = board(STATE + "Partition.mark_app_valid_cancel_rollback()\nprint(json.dumps('ok'))\n")
    assert out[1] == "ok"
    assert board.otadata() == (SEQ1_VALID, BLANK)


def test_a_soft_reset_keeps_the_running_image_and_runs_no_bootloader(board):
    board(IMAGE + """
n = Partition(Partition.RUNNING).get_next_update()
n.writeblocks(0, image("v1.29.1"))
n.set_boot()
""")
    # set to boot but not reset yet: a soft reset still runs the old image, otadata untouched
    assert board(STATE, soft=True)[0] == {"running": "ota_0", "boot": "ota_1", "version": "v1.29.0 on 2026-06-01",
                                          "release": "1.29.0"}
    assert board.otadata() == (SEQ1_VALID, SEQ2 % "00000000")
    assert board(STATE)[0]["running"] == "ota_1"
    # in its trial: soft resets (every mpremote command makes one) do not abort it
    for _ in range(2):
        assert board(STATE, soft=True)[0]["version"] == "v1.29.1 on 2026-07-01"
    assert board.otadata() == (SEQ1_VALID, SEQ2 % "01000000")
