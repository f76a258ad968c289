"""The hal's attestation pieces. boards/esp32/hal.py (which boards/rp2040/hal.py links to) runs here on
the unix port with a fake `machine` module put in sys.modules: a mem32 table holding chosen eFuse/OTP
words and a reset_cause(). Nothing here has run on an ESP32 or an RP2350: the register addresses and
bits come from esp-idf and pico-sdk headers (cited in the hal), not from hardware."""

import shutil

import pytest

from tools.boards import BOARDS_DIR

SCRIPT = """
import json, sys
class Machine:
    PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 2, 3, 4, 5
    def __init__(self, words, cause):
        self.mem32 = words
        self.cause = cause
    def reset_cause(self):
        return self.cause
sys.modules["machine"] = Machine(%r, %d)
import mcu_hal
s = mcu_hal.security_state(%r)
print(json.dumps({"state": None if s is None else [s[0], s[1].hex()], "reset": mcu_hal.reset_code()}))
"""

EFUSE0, EFUSE6 = 0x3FF5A000, 0x3FF5A018
CRITICAL, DEBUGEN = 0x40120148, 0x40120150
ESP32 = "Generic ESP32 module with ESP32"
RP2350 = "Raspberry Pi Pico 2 W with RP2350"


@pytest.fixture
def run(mp):
    shutil.copy(BOARDS_DIR / "esp32" / "hal.py", mp.lib / "mcu_hal.py")

    def go(words, machine_name, cause=0):
        return mp(SCRIPT % (words, cause, machine_name))[-1]
    return go


@pytest.mark.parametrize("w0, w6, flags", [
    (0, 0, 8),                              # nothing burnt: only "the state was read"
    (1 << 20, 0, 8 | 2),                    # FLASH_CRYPT_CNT = 1 (odd): flash encryption on
    (3 << 20, 0, 8),                        # FLASH_CRYPT_CNT = 3 (even): turned off again
    (0, 1 << 4, 8 | 1),                     # ABS_DONE_0: secure boot v1
    (0, 1 << 5, 8 | 1),                     # ABS_DONE_1: secure boot v2
    (0, 1 << 6, 8 | 4),                     # DISABLE_JTAG
    (0x7F << 20, 0x70, 8 | 1 | 2 | 4),      # CNT = 7 bits (odd), both ABS_DONE, JTAG off
])
def test_esp32_efuse_words_give_flags_and_raw(run, w0, w6, flags):
    r = run({EFUSE0: w0, EFUSE6: w6}, ESP32)
    assert r["state"] == [flags, "%08x%08x" % (w0, w6)]


def test_esp32_raw_is_the_two_words_big_endian(run):
    assert run({EFUSE0: 0x00100001, EFUSE6: 0x00000050}, ESP32)["state"] == [8 | 2 | 1 | 4, "0010000100000050"]


@pytest.mark.parametrize("crit, flags", [(0, 8), (1, 8 | 1), (4, 8 | 4), (2, 8), (0x30005, 8 | 1 | 4)])
def test_rp2350_otp_critical_gives_flags(run, crit, flags):
    r = run({CRITICAL: crit, DEBUGEN: 0x10F}, RP2350)
    assert r["state"] == [flags, "%08x0000010f" % crit]


@pytest.mark.parametrize("name", ["Raspberry Pi Pico W with RP2040", "ESP32S3 module with ESP32S3",
                                  "ESP32C3 module with ESP32C3", "linux [GCC 14.2.1] version"])
def test_chips_without_a_known_map_report_nothing(run, name):
    # a read from the wrong map would be a false claim: the RP2040 has no OTP; S3/C3 eFuses differ
    assert run({}, name)["state"] is None


@pytest.mark.parametrize("cause, code", [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (99, 0)])
def test_reset_cause_maps_to_the_evidence_codes(run, cause, code):
    assert run({}, "x", cause)["reset"] == code


def test_unix_hal_reports_no_hardware_state_and_counts_uptime(mp):
    out = mp("""
import json, janua_hal
print(json.dumps([janua_hal.security_state(), janua_hal.reset_code(), janua_hal.uptime_s()]))
""")
    assert out == [[None, 0, 0]]


BOOTS = """
import json
from janua.app import run
from janua.store import Store
print(run(store=Store()))
print(run(store=Store()))
print(json.dumps(Store().load_state().get("boots")))
"""


def test_boot_count_advances_once_per_boot_not_per_run(mp):
    import json
    from attest_helpers import CFG
    cfg = dict(CFG, transport="udp", udp_timeout=0.05, server={"host": "127.0.0.1", "udp_port": 9})
    (mp.flash / "janua.json").write_text(json.dumps(cfg))
    assert mp(BOOTS) == [1]
    assert mp(BOOTS) == [2]          # a new process is a new boot
