"""boards/esp32/hal.py's rssi() (rp2040 links to the same file) on the unix port with a fake `network`
module in sys.modules, and the whole report built through it. Not run on an ESP32 or a Pico W: that
WLAN.status("rssi") gives dBm there is the MicroPython documentation's word."""

import shutil

from tools.boards import BOARDS_DIR
from verifier.health.core import decode

SCRIPT = """
import json, sys
class WLAN:
    def __init__(self, i):
        assert i == 0
    def isconnected(self):
        return CONNECTED
    def status(self, what):
        assert what == "rssi"
        return -83
class Network:
    STA_IF = 0
    WLAN = WLAN
sys.modules["network"] = Network()
CONNECTED = %r
import mcu_hal
from binascii import hexlify
from janua import health
print(json.dumps([mcu_hal.rssi(), hexlify(health.report(mcu_hal, 2)).decode()]))
"""


def test_rssi_when_connected_and_absent_when_not(mp):
    shutil.copy(BOARDS_DIR / "esp32" / "hal.py", mp.lib / "mcu_hal.py")
    on = mp(SCRIPT % True)[-1]
    off = mp(SCRIPT % False)[-1]
    assert on[0] == -83 and decode(bytes.fromhex(on[1]))["rssi"] == -83
    assert off[0] is None and "rssi" not in decode(bytes.fromhex(off[1]))
