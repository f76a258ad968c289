# Board entry point (flash root): authenticate once at boot and print one line.
# It must never crash into a reboot loop, so every failure is caught and printed.
try:
    from janua.app import run
    print(run())
except Exception as e:  # last line of defence on the device: report, do not reboot-loop
    print("janua: auth failed: %s: %s" % (type(e).__name__, e))
