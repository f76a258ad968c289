# `network` on the virtual esp32 and Pico W: network.WLAN, station mode (MicroPython code; host
# tooling, never installed on a device). From the MicroPython docs (library/network.html,
# network.WLAN.html) and the ports' WLAN code (ports/esp32/network_wlan.c, extmod/network_cyw43.c).
#
# The radio is emulated, the network is not: sockets are the unix port's and reach the host's
# network whether or not the WLAN is connected. What the emulation decides is what the board's
# code sees: which access points exist (JANUA_VBOARD_WIFI, JSON: {"aps": [{"ssid", "password",
# "rssi"}], "connect_ms"}; default one WPA2 network "janua-vboard" with password "janua-vboard" at
# -55 dBm, 200 ms to connect), how long connect() takes, and how it fails: an unknown SSID ends in
# STAT_NO_AP_FOUND, a wrong password in STAT_WRONG_PASSWORD, each after connect_ms, as the ports
# report them. Status codes as each port defines them (esp32: ESP-IDF reason codes and 1000+;
# Pico W: the cyw43 link states). scan() lists the access points; ifconfig() gives a fixed private
# address once connected. Assumed: connect() returns at once and the status moves on later on both
# ports (the documented behaviour); nothing disconnects by itself.
import json
import time

STA_IF = 0
AP_IF = 1
_ctx = None
_cfg = None
_esp32 = True
_ifaces = {}
_DEFAULT = {"aps": [{"ssid": "janua-vboard", "password": "janua-vboard", "rssi": -55}], "connect_ms": 200}


def init(ctx):
    global _ctx, _cfg, _esp32
    _ctx = ctx
    _esp32 = ctx.spec.get("platform") == "esp32"
    raw = ctx.env.get("JANUA_VBOARD_WIFI")
    _cfg = json.loads(raw) if raw else _DEFAULT
    g = globals()
    if _esp32:
        st = {"STAT_IDLE": 1000, "STAT_CONNECTING": 1001, "STAT_GOT_IP": 1010, "STAT_BEACON_TIMEOUT": 200,
              "STAT_NO_AP_FOUND": 201, "STAT_WRONG_PASSWORD": 202, "STAT_ASSOC_FAIL": 203,
              "STAT_HANDSHAKE_TIMEOUT": 204}
    else:
        st = {"STAT_IDLE": 0, "STAT_CONNECTING": 1, "STAT_GOT_IP": 3, "STAT_CONNECT_FAIL": -1,
              "STAT_NO_AP_FOUND": -2, "STAT_WRONG_PASSWORD": -3}
    g.update(st)


def _mac():
    uid = bytes.fromhex(_ctx.env.get("JANUA_VBOARD_UID", "")) or bytes(8)
    if _esp32:
        return uid[:6]   # the station MAC is the base MAC from eFuse
    return b"\x28\xcd\xc1" + uid[-3:]   # cyw43: an address in Raspberry Pi's OUI 28:cd:c1


def WLAN(interface_id=STA_IF):
    # one object per interface, as the ports return the same singleton
    w = _ifaces.get(interface_id)
    if w is None:
        if interface_id not in (STA_IF, AP_IF):
            raise ValueError("invalid WLAN interface identifier")
        w = _ifaces[interface_id] = _WLAN(interface_id)
    return w


class _WLAN:
    def __init__(self, iface):
        self._iface = iface
        self._active = False
        self._ssid = None
        self._result = None      # status once connect_ms has passed
        self._since = None
        self._rssi = None
        self._static = None

    def active(self, on=None):
        if on is None:
            return self._active
        self._active = bool(on)
        if not on:
            self.disconnect()

    def connect(self, ssid=None, key=None, bssid=None):
        if not self._active:
            raise OSError("Wifi Not Started" if _esp32 else "STA must be active")
        g = globals()
        ap = None
        for a in _cfg.get("aps", ()):
            if a.get("ssid") == ssid:
                ap = a
        if ap is None:
            self._result = g["STAT_NO_AP_FOUND"]
        elif (ap.get("password") or "") != (key or ""):
            self._result = g["STAT_WRONG_PASSWORD"]
        else:
            self._result = g["STAT_GOT_IP"]
            self._rssi = ap.get("rssi", -60)
        self._ssid = ssid
        self._since = time.ticks_ms()

    def disconnect(self):
        self._ssid = self._result = self._since = None

    def status(self, param=None):
        if param == "rssi":
            if not self.isconnected():
                raise OSError("not connected")   # assumed: both ports fail when there is no link
            return self._rssi
        if param is not None:
            raise ValueError("unknown status param")
        g = globals()
        if self._since is None:
            return g["STAT_IDLE"]
        if time.ticks_diff(time.ticks_ms(), self._since) < _cfg.get("connect_ms", 200):
            return g["STAT_CONNECTING"]
        return self._result

    def isconnected(self):
        return self._active and self.status() == globals()["STAT_GOT_IP"]

    def ifconfig(self, cfg=None):
        if cfg is not None:
            self._static = tuple(cfg)
            return
        if not self.isconnected():
            return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")
        return self._static or ("192.168.4.23", "255.255.255.0", "192.168.4.1", "192.168.4.1")

    def scan(self):
        if not self._active:
            raise OSError("Wifi Not Started" if _esp32 else "STA must be active")
        out = []
        for i, a in enumerate(_cfg.get("aps", ())):
            sec = 3 if a.get("password") else 0   # WPA2-PSK or open
            out.append((a["ssid"].encode(), bytes([2, 0, 0, 0, 0, i + 1]), 6, a.get("rssi", -60), sec, False))
        return out

    def config(self, *args, **kw):
        if kw:
            return None   # settings (hostname, txpower, pm, ...) are accepted and have no effect
        if len(args) != 1:
            raise TypeError("can query only one param")
        p = args[0]
        if p == "mac":
            return _mac()
        if p in ("ssid", "essid"):
            return self._ssid or ""
        if p == "hostname":
            return "esp32" if _esp32 else "PicoW"
        raise ValueError("unknown config param")
