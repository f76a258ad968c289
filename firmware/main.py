# Board entry point (flash root). First the OTA boot step: if an update is installed, it picks the
# application slot, counts trial boots and rolls back by itself (janua/otaboot.py), then runs that
# application, which authenticates and confirms itself. Without an update, authenticate once and
# print one line. It must never crash into a reboot loop, so failures are caught and printed.
import gc
import sys
_before = set(sys.modules)
try:
    from janua import otaboot
    _ran = otaboot.main()
except ImportError:
    _ran = None  # installed without the OTA modules
except Exception as e:  # a broken update state must not stop the board from authenticating
    print("janua: ota boot: %s: %s" % (type(e).__name__, e))
    _ran = None
if _ran is None:
    # No update is running: drop the OTA modules (their code and tables hold ~30 KB of an ESP32's heap)
    # before authenticating, so the auth path gets that memory back in one piece.
    import janua
    for _m in [m for m in sys.modules if m not in _before and m.startswith("janua.")]:
        del sys.modules[_m]
        try:
            delattr(janua, _m[6:])
        except AttributeError:
            pass
    otaboot = None
    gc.collect()
    try:
        from janua.app import run
        print(run())
    except Exception as e:  # last line of defence on the device: report, do not reboot-loop
        print("janua: auth failed: %s: %s" % (type(e).__name__, e))
