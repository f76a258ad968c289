"""The device clock: unix seconds = the port's time.time() + a correction learned from the server.

Boards boot without a real-time clock, so the clock starts wrong and is set only from the server
time of an *authenticated* reply (binauth.py decides that; this module trusts its caller). It
remembers its source ("none" or "server") and the unix time at which it was set. It does not
persist anything and does not touch the board's RTC.
"""

import time

# Ports whose epoch is 2000-01-01 (esp32, rp2040) report time.gmtime(0)[0] == 2000.
_EPOCH_2000 = 946684800


class Clock:
    def __init__(self, time_fn=None, epoch_offset=None):
        # time_fn: seconds since the port's epoch (time.time by default); injected in tests.
        self._time = time_fn or time.time
        if epoch_offset is None:
            epoch_offset = _EPOCH_2000 if time.gmtime(0)[0] == 2000 else 0
        self._epoch = epoch_offset
        self._delta = 0
        self.source = "none"
        self.set_at = None  # unix time when set from the server

    def _raw(self):
        return int(self._time()) + self._epoch

    def now(self):
        """Unix time in whole seconds, as well as this device knows it."""
        return self._raw() + self._delta

    def set_from_server(self, server_time):
        """Adopt server_time as now. Call only with the time of an authenticated reply."""
        self._delta = server_time - self._raw()
        self.source = "server"
        self.set_at = server_time
