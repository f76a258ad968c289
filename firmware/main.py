# Board entry point (flash root). First the OTA boot step: if an update is installed, it picks the
# application slot, counts trial boots and rolls back by itself (janua/otaboot.py), then runs that
# application, which authenticates and confirms itself. Without an update, authenticate once and
# print one line. Then the update check when one is due (janua/otacheck.py, docs/ota.md 7.5): at a
# cold boot, then once janua.json ota.check_s (default 6 h) has passed, in a boot or wake that
# happens anyway (never a wake-up of its own). It must never crash into a reboot loop, so failures
# are caught and printed.
import gc
import sys
_before = set(sys.modules)


def _unload():
    # Drop the modules this boot loaded (the OTA ones hold ~30 KB of an ESP32's heap) so the next
    # step gets that memory back in one piece: the janua ones and the application's too (its
    # entry module, once it has returned). The application's globals hold the janua functions it
    # imported (`from janua.app import run`), and a function keeps its module's globals alive: with
    # only janua.* dropped, ~27 KB stayed on the heap after an update's app ran, and the update
    # check's attestation then failed with MemoryError importing janua.attest.
    import janua
    for m in [m for m in sys.modules if m not in _before and m != "janua"]:
        del sys.modules[m]
        if not m.startswith("janua."):
            continue
        try:
            delattr(janua, m[6:])
        except AttributeError:
            pass
    gc.collect()


try:
    from janua import otaboot
    _ran = otaboot.main()
except ImportError:
    _ran = None  # installed without the OTA modules
except Exception as e:  # a broken update state must not stop the board from authenticating
    print("janua: ota boot: %s: %s" % (type(e).__name__, e))
    _ran = None
otaboot = None
_unload()
_clock = None
if _ran is None:
    # No update is running: authenticate with the factory application
    try:
        from janua.clock import Clock
        from janua.app import run
        _clock = Clock()  # set from the server's authenticated time: the update check reuses it
        print(run(clock=_clock))
    except Exception as e:  # last line of defence on the device: report, do not reboot-loop
        print("janua: auth failed: %s: %s" % (type(e).__name__, e))
    run = Clock = None
    _unload()
try:
    import janua_hal
except ImportError:
    janua_hal = None
try:
    _cold = not janua_hal.woke_from_sleep()  # a deep-sleep wake checks only when due
except Exception:  # no hal, or one that cannot tell (the unix port): every boot is cold
    _cold = True
try:
    from janua.otacheck import scheduled
    _r, _line = scheduled(clock=_clock, cold=_cold)
    if _line:
        print(_line)
    if _r == "installed" and janua_hal is not None:
        janua_hal.reset()  # boot the new version in trial
except ImportError:
    pass  # installed without the OTA modules
except Exception as e:
    print("janua: ota check: %s: %s" % (type(e).__name__, e))
scheduled = None
_unload()
