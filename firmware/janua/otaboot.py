"""What main.py calls first: pick the application slot, count trial boots, roll back by itself.

    from janua import otaboot
    if otaboot.main() is None:
        ...   # no update installed yet: run the factory application

`select()` reads the pointer (ota.py). A confirmed slot just runs. A slot in trial has its boot
counted *before* the application starts (so a hang or a crash still counts); once the count passes
its allowed boots the pointer goes back to the previous slot and a "rolled_back" report records
why. `main()` then imports the slot's entry module. When that raises during a trial, the error is
noted and the board resets (janua_hal.reset) so the next trial boot comes without a person; a
confirmed application that raises is left to the console: no reset loop. The application calls
janua.ota.confirm() once it has booted and authenticated. Keep this module small: it runs on
every boot.
"""

import sys
from janua.ota import AppSlots


def select(slots=None):
    """(slot directory or None, entry module, in_trial) after counting this boot."""
    slots = slots or AppSlots()
    ptr = slots.pointer()
    if ptr.get("state") == "trial":
        boots = ptr.get("boots", 0) + 1
        if boots > ptr.get("max_boots", 3):
            slots.rollback("not confirmed after %d boots" % (boots - 1))
            ptr = slots.pointer()
        else:
            ptr["boots"] = boots
            slots.set_pointer(ptr)
    elif ptr.get("counter", 0) and ptr["active"]:
        slots.confirm()  # finishes a counter commit a power cut interrupted (no-op otherwise)
    if not ptr.get("active"):
        return None, None, False
    return slots.p("app_" + ptr["active"]), ptr.get("entry") or "main", ptr.get("state") == "trial"


def main(slots=None, reset=None):
    """Run the selected application; None when there is none (the caller runs its own)."""
    slots = slots or AppSlots()
    d, entry, trial = select(slots)
    if d is None:
        return None
    sys.path.insert(0, d)
    try:
        __import__(entry)
    except Exception as e:  # the app failed to start: in trial this is what rollback is for
        if not trial:
            raise
        slots.note_failure("%s: %s" % (type(e).__name__, e))
        if reset is None:
            try:
                import janua_hal
                reset = janua_hal.reset
            except ImportError:
                raise e
        reset()
    return d
