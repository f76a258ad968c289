"""janua_hal for the virtual board (MicroPython unix port): no machine, no network module.

The unique id is 8 random bytes kept in .vboard_uid in the flash directory (cwd), created at
first boot. The network is the host's, so connect_network does nothing; reset exits the process
(the virtual board's supervisor restarts it). For attestation: uptime_s() counts from this module's
import (main.py imports it at the virtual board's boot), reset_code() is 0 (unknown: only the
supervisor sees the exit status) and security_state() is None (no hardware to report on).
"""

import os
import sys
import time

_T0 = time.ticks_ms()

_UID_FILE = ".vboard_uid"


def board():
    return "unix"


def unique_id():
    try:
        with open(_UID_FILE, "rb") as f:
            uid = f.read(8)
        if len(uid) == 8:
            return uid
    except OSError:
        pass
    uid = os.urandom(8)
    with open(_UID_FILE + ".tmp", "wb") as f:
        f.write(uid)
    os.rename(_UID_FILE + ".tmp", _UID_FILE)
    return uid


def connect_network(cfg):
    return None


def reset():
    sys.exit(1)  # non-zero: the virtual board treats it as a hard reset


def reset_code():
    return 0


def uptime_s():
    return time.ticks_diff(time.ticks_ms(), _T0) // 1000


def security_state():
    return None
