"""janua_hal for the Wi-Fi microcontroller boards (esp32 and rp2040/Pico W share this file:
boards/rp2040/hal.py links here): the only janua device code that imports machine or network.

board(), unique_id() (esp32: the 6-byte factory MAC from eFuse; rp2040: the 8-byte id of the QSPI
flash chip), connect_network(cfg) (WLAN station with cfg["wifi"] {"ssid", "password"} and a timeout)
and reset(), woke_from_sleep(), rssi() (the health report), set_time() (HTTPS); for attestation (janua/attest.py) reset_code(), uptime_s() and
security_state(). No protocol logic lives here.
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


def set_time(unix):
    # the RTC (what mbedTLS checks a certificate's validity against, docs/protocol.md 3.5) to `unix` seconds.
    # RTC.datetime takes (year, month, day, weekday, hours, minutes, seconds, subseconds). Untested on hardware.
    import machine
    t = time.gmtime(unix - (946684800 if time.gmtime(0)[0] == 2000 else 0))
    machine.RTC().datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))
    return True


def rssi():
    # the station's signal in dBm for the health report (docs/health.md 1), None when not connected.
    # WLAN.status("rssi") is documented for the esp32 and the Pico W (cyw43) ports; untested on hardware.
    import network
    w = network.WLAN(network.STA_IF)
    return w.status("rssi") if w.isconnected() else None


def woke_from_sleep():
    # True when this boot is a wake from deep sleep (esp32: machine.DEEPSLEEP_RESET); the OTA check
    # then waits until it is due (janua/otacheck.py). Untested on hardware.
    import machine
    cause = getattr(machine, "DEEPSLEEP_RESET", None)
    return cause is not None and machine.reset_cause() == cause


# machine.reset_cause() constants -> the reset cause codes of docs/attestation.md 2.2 (record 0x07).
# MicroPython has no brownout constant (the esp32 port folds it into another cause): 6 is never sent.
_CAUSES = (("PWRON_RESET", 1), ("HARD_RESET", 2), ("WDT_RESET", 3), ("DEEPSLEEP_RESET", 4),
           ("SOFT_RESET", 5))


def reset_code():
    import machine
    c = machine.reset_cause()
    for name, code in _CAUSES:
        if getattr(machine, name, None) == c:
            return code
    return 0


def uptime_s():
    # Milliseconds since boot (esp_timer / the rp2 timer), in seconds. time.ticks_ms() wraps at 2**30
    # ms on these ports, so after about 12.4 days of uptime the figure starts again from 0.
    return time.ticks_ms() // 1000


def chip(machine_name=None):
    """"esp32" (the classic ESP32 only: the S2/S3/C3 have other eFuse maps), "rp2350", "rp2040" or None,
    from sys.implementation._machine, e.g. "Generic ESP32 module with ESP32"."""
    m = machine_name if machine_name is not None else getattr(sys.implementation, "_machine", "")
    if m.endswith(" with ESP32"):
        return "esp32"
    if m.endswith("RP2350"):
        return "rp2350"
    if m.endswith("RP2040"):
        return "rp2040"
    return None


def _esp32_state(mem32):
    # Classic ESP32 eFuse block 0 read registers, DR_REG_EFUSE_BASE = 0x3FF5A000 (esp-idf
    # components/soc/esp32/include/soc/efuse_reg.h, soc.h; ESP32 TRM "eFuse Controller"):
    #   EFUSE_BLK0_RDATA0_REG (base + 0x000): FLASH_CRYPT_CNT bits 26:20; flash encryption is on
    #     when an odd number of its 7 bits is set (esp-idf esp_flash_encryption_enabled)
    #   EFUSE_BLK0_RDATA6_REG (base + 0x018): ABS_DONE_0 bit 4 (secure boot v1), ABS_DONE_1 bit 5
    #     (secure boot v2), DISABLE_JTAG bit 6
    w0 = mem32[0x3FF5A000] & 0xFFFFFFFF
    w6 = mem32[0x3FF5A018] & 0xFFFFFFFF
    flags = 8
    if w6 & 0x30:
        flags |= 1
    cnt = (w0 >> 20) & 0x7F
    ones = 0
    while cnt:
        ones += cnt & 1
        cnt >>= 1
    if ones & 1:
        flags |= 2
    if w6 & 0x40:
        flags |= 4
    return flags, w0.to_bytes(4, "big") + w6.to_bytes(4, "big")


def _rp2350_state(mem32):
    # RP2350 OTP block, OTP_BASE = 0x40120000 (pico-sdk src/rp2350/hardware_regs/include/hardware/
    # regs/addressmap.h; RP2350 datasheet section 13.9 "OTP registers"):
    #   CRITICAL (base + 0x148): the critical flags the OTP power-up state machine latched from the
    #     CRIT1 rows: SECURE_BOOT_ENABLE bit 0, SECURE_DEBUG_DISABLE bit 1, DEBUG_DISABLE bit 2
    #   DEBUGEN (base + 0x150): sent raw; the RP2350 has no flash encryption of its own (bit 1 stays 0)
    crit = mem32[0x40120148] & 0xFFFFFFFF
    dbg = mem32[0x40120150] & 0xFFFFFFFF
    flags = 8
    if crit & 1:
        flags |= 1
    if crit & 4:
        flags |= 4
    return flags, crit.to_bytes(4, "big") + dbg.to_bytes(4, "big")


def security_state(machine_name=None):
    """(flags, raw words) of the hardware security state as the chip reports it (docs/attestation.md
    2.2 record 0x08), or None: the RP2040 has no OTP and no secure boot, and an ESP32 variant other
    than the classic one is not read (its eFuse map differs). Claimed by the board, not proven:
    firmware that lies can report anything. Untested on hardware (tests/firmware/test_attest_hal.py
    runs it on the unix port with a fake machine.mem32)."""
    c = chip(machine_name)
    if c not in ("esp32", "rp2350"):
        return None
    import machine
    return (_esp32_state if c == "esp32" else _rp2350_state)(machine.mem32)
