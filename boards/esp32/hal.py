"""janua_hal for the Wi-Fi microcontroller boards (esp32 and rp2040/Pico W share this file:
boards/rp2040/hal.py links here): the only janua device code that imports machine or network.

board(), unique_id() (esp32: the 6-byte factory MAC from eFuse; rp2040: the 8-byte id of the QSPI
flash chip), connect_network(cfg) (WLAN station with cfg["wifi"] {"ssid", "password"} and a timeout)
and reset(), woke_from_sleep(). No protocol logic lives here.
"""

import sys
import time

# sys.platform is "esp32" or "rp2" on stock firmware; janua's board names are the profiles'.
_BOARD = "rp2040" if sys.platform == "rp2" else sys.platform


def board():
    return _BOARD


def unique_id():
    import machine
    return machine.unique_id()


def connect_network(cfg):
    # Station mode; returns the IP address. Raises OSError when not connected in time.
    import network
    wifi = cfg.get("wifi") or {}
    ssid = wifi.get("ssid")
    if not ssid:
        raise OSError("no wifi.ssid in janua.json")
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    if not wlan.isconnected():
        wlan.connect(ssid, wifi.get("password", ""))
        deadline = time.ticks_add(time.ticks_ms(), int(wifi.get("timeout", 15) * 1000))
        while not wlan.isconnected():
            if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
                wlan.active(False)
                raise OSError("wifi %s: not connected in time" % ssid)
            time.sleep_ms(100)
    return wlan.ifconfig()[0]


def reset():
    import machine
    machine.reset()


def woke_from_sleep():
    # True when this boot is a wake from deep sleep (esp32: machine.DEEPSLEEP_RESET); the OTA check
    # then waits until it is due (janua/otacheck.py). Untested on hardware.
    import machine
    cause = getattr(machine, "DEEPSLEEP_RESET", None)
    return cause is not None and machine.reset_cause() == cause
