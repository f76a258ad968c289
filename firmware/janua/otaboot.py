"""What main.py calls first: pick the application slot, count trial boots, roll back by itself.

    from janua import otaboot
    if otaboot.main() is None:
        ...   # no update installed yet: run the factory application

`select()` reads the pointer (ota.py). A confirmed slot just runs. A slot in trial has its boot
counted *before* the application starts (so a hang or a crash still counts); once the count passes
its allowed boots, or the trial has lasted longer than its allowed seconds, the pointer goes back to
the previous slot and a "rolled_back" report records why. Time: the first trial boot stores the
wall clock (`since`); a later boot whose clock reads more than `max_seconds` after it rolls back
(a clock that reads earlier, e.g. an RTC reset by a power cut, proves nothing: the boot count
still bounds the trial, and the timer gets a whole period). Within a boot, main() arms a one-shot timer (machine.Timer, or `arm`) for the
seconds left: an application that neither confirms nor crashes is rolled back and reset at the
deadline. `main()` imports the slot's entry module. When that raises during a trial, the error is
noted and the board resets (janua_hal.reset) so the next trial boot comes without a person; a
confirmed application that raises is left to the console: no reset loop. The application calls
janua.ota.confirm() once it has booted and authenticated. Keep this module small: it runs on
every boot.
"""

import sys
from janua.ota import AppSlots


def _left(ptr, now):
    # Seconds left in this trial; None: no time limit. A clock reading before `since` cannot tell
    # how long the trial has run: a whole period from this boot.
    limit = ptr.get("max_seconds") or 0
    if limit <= 0:
        return None
    since = ptr.get("since")
    if since is None or now < since:
        return limit
    return since + limit - now


def select(slots=None, now=None):
    """(slot directory or None, entry module, seconds left in trial or None, in_trial) after
    counting this boot. `now`: the wall clock in seconds (default time.time())."""
    slots = slots or AppSlots()
    ptr = slots.pointer()
    left = None
    if ptr.get("state") == "trial":
        if now is None:
            from time import time as now
        t = int(now())
        boots = ptr.get("boots", 0) + 1
        left = _left(ptr, t)
        if boots > ptr.get("max_boots", 3):
            slots.rollback("not confirmed after %d boots" % (boots - 1))
            ptr = slots.pointer()
        elif left is not None and left <= 0:
            slots.rollback("not confirmed within %d s" % ptr["max_seconds"])
            ptr = slots.pointer()
        else:
            ptr["boots"] = boots
            if ptr.get("since") is None:
                ptr["since"] = t  # the first trial boot: the trial's time starts
            slots.set_pointer(ptr)
    elif ptr.get("counter", 0) and ptr["active"]:
        slots.confirm()  # finishes a counter commit a power cut interrupted (no-op otherwise)
    trial = ptr.get("state") == "trial"
    if not ptr.get("active"):
        return None, None, None, False
    return slots.p("app_" + ptr["active"]), ptr.get("entry") or "main", left if trial else None, trial


def expire(slots, reset):
    """The trial's time is up (the deadline timer): roll back unless the app confirmed, reset."""
    ptr = slots.pointer()
    if ptr.get("state") == "trial":
        slots.rollback("not confirmed within %d s" % ptr.get("max_seconds", 0))
        reset()


def _arm(seconds, callback):
    # A one-shot timer where the port has one (ESP32, RP2040); the unix port has none.
    try:
        from machine import Timer
    except ImportError:
        return None
    t = Timer(-1) if sys.platform == "rp2" else Timer(0)
    t.init(mode=Timer.ONE_SHOT, period=int(seconds * 1000), callback=lambda _: callback())
    return t


def main(slots=None, reset=None, now=None, arm=None):
    """Run the selected application; None when there is none (the caller runs its own).
    `arm(seconds, callback)` starts the trial deadline (default: a machine.Timer)."""
    slots = slots or AppSlots()
    d, entry, left, trial = select(slots, now)
    if d is None:
        return None
    if reset is None:
        try:
            import janua_hal
            reset = janua_hal.reset
        except ImportError:
            reset = None
    if left is not None and reset is not None:
        (arm or _arm)(left, lambda: expire(slots, reset))
    sys.path.insert(0, d)
    try:
        __import__(entry)
    except Exception as e:  # the app failed to start: in trial this is what rollback is for
        if not trial:
            raise
        slots.note_failure("%s: %s" % (type(e).__name__, e))
        if reset is None:
            raise e
        reset()
    return d
