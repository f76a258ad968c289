# `machine` on the virtual esp32 and Pico W (MicroPython code; host tooling, never installed on a
# device). From the MicroPython docs (library/machine.html, machine.Timer, machine.WDT, machine.RTC)
# and the ports' modmachine.c (ports/esp32, ports/rp2):
#
# - unique_id(): the board's id from the flash directory's uid.bin (esp32: the 6-byte base MAC from
#   eFuse; rp2040: the 8-byte id of the QSPI flash chip).
# - reset() ends the interpreter at once, and the supervisor boots the board again; soft_reset()
#   ends it as a soft reset (Ctrl-D). reset_cause() and its constants as each port has them:
#   esp32 PWRON_RESET 1, HARD_RESET 2, WDT_RESET 3, DEEPSLEEP_RESET 4, SOFT_RESET 5, and after
#   machine.reset() SOFT_RESET (the port maps ESP-IDF's software reset there); rp2 only
#   PWRON_RESET 1 and WDT_RESET 3, and WDT_RESET after machine.reset() (the port resets through the
#   watchdog). A soft reset keeps the cause of the last hard one, as the chip's register does.
# - Timer(id): one-shot and periodic timers on a thread; the callback is scheduled
#   (micropython.schedule), as the ports' soft timer callbacks are. Assumed difference: on a board the
#   port runs scheduled callbacks during time.sleep() and socket waits; the unix port runs them when
#   that call returns.
# - WDT(timeout=ms): feed() or the board resets with WDT_RESET, from a thread, even while the
#   interpreter is stuck in a call. It cannot be stopped, as on both ports.
# - RTC(): datetime() get/set (an offset on the host clock, lost at reset like the chips' RTC
#   without a battery); freq() get/set within the port's allowed values; idle(); lightsleep(ms),
#   deepsleep(ms) (esp32: a reset with DEEPSLEEP_RESET); mem8/16 are the unix port's, mem32 reads
#   the profile's register words (the esp32's eFuse block 0) and 0 elsewhere.
import time

_ctx = None
_esp32 = True
_cause = 1
_freq = [160000000]
_rtc_offset = [0]

PWRON_RESET = 1
WDT_RESET = 3


def init(ctx):
    global _ctx, _esp32, _cause
    _ctx = ctx
    _esp32 = ctx.spec.get("platform") == "esp32"
    g = globals()
    if _esp32:
        g["HARD_RESET"] = 2
        g["DEEPSLEEP_RESET"] = 4
        g["SOFT_RESET"] = 5
        _freq[0] = 160000000
        causes = {"hard": 5, "soft": 5, "wdt": 3, "deepsleep": 4}
    else:
        _freq[0] = 125000000
        causes = {"hard": 3, "soft": 3, "wdt": 3, "deepsleep": 3}
    _cause = causes.get(ctx.env.get("JANUA_VBOARD_RESET"), PWRON_RESET)
    real = ctx.real_machine
    for name in ("mem8", "mem16"):
        g[name] = getattr(real, name)
    words = {}
    for addr, value in (ctx.spec.get("mem32") or {}).items():
        words[int(addr, 16)] = value
    g["mem32"] = _Mem32(words)


class _Mem32:
    # machine.mem32 for the registers the profile lists (vboard "mem32": the esp32's eFuse block 0
    # words that janua_hal.security_state() reads, as an unfused chip has them); any other address
    # reads 0 and writes are ignored: there are no peripherals behind it.
    def __init__(self, words):
        self._w = words

    def __getitem__(self, addr):
        return self._w.get(addr, 0)

    def __setitem__(self, addr, value):
        pass


def unique_id():
    return bytes.fromhex(_ctx.env.get("JANUA_VBOARD_UID", ""))


def reset():
    _ctx.die("hard")


def soft_reset():
    _ctx.die("soft")


def reset_cause():
    return _cause


def freq(hz=None):
    if hz is None:
        return _freq[0]
    ok = (20, 40, 80, 160, 240) if _esp32 else None
    if ok is not None and hz // 1000000 not in ok:
        raise ValueError("frequency must be 20MHz, 40MHz, 80Mhz, 160MHz or 240MHz")
    if ok is None and not 1000000 <= hz <= 250000000:
        raise ValueError("cannot change frequency")
    _freq[0] = hz


def idle():
    time.sleep_ms(1)


def lightsleep(ms=None):
    time.sleep_ms(ms or 0)


def deepsleep(ms=None):
    _ctx.die("deepsleep")


def _thread_call(fn, args):
    import _thread
    _thread.stack_size(16 * 1024)
    _thread.start_new_thread(fn, args)


class Timer:
    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id=-1, **kw):
        # esp32 hardware timers are 0..3; rp2's only timer is the virtual one, -1
        if _esp32 and id not in (0, 1, 2, 3):
            raise ValueError("id must be 0..3")
        if not _esp32 and id != -1:
            raise ValueError("Timer doesn't exist")
        self._gen = 0
        if kw:
            self.init(**kw)

    def init(self, mode=PERIODIC, period=-1, callback=None, freq=-1, tick_hz=1000):
        if freq > 0:
            period = 1000 // freq
        if period < 0:
            raise ValueError("period must be given")
        self.deinit()
        gen = self._gen
        _thread_call(self._run, (gen, mode, period, callback))

    def _run(self, gen, mode, period, callback):
        import micropython
        while True:
            time.sleep_ms(period)
            if gen != self._gen:
                return
            if callback is not None:
                try:
                    micropython.schedule(callback, self)
                except RuntimeError:
                    pass   # schedule queue full: the tick is lost, as on a board
            if mode == Timer.ONE_SHOT:
                return

    def deinit(self):
        self._gen += 1


class WDT:
    def __init__(self, id=0, timeout=5000):
        if not 1 <= timeout:
            raise ValueError("WDT timeout too short")
        self._timeout = timeout
        self.feed()
        _thread_call(self._watch, ())

    def feed(self):
        self._last = time.ticks_ms()

    def _watch(self):
        while True:
            time.sleep_ms(20)
            if time.ticks_diff(time.ticks_ms(), self._last) > self._timeout:
                _ctx.die("wdt")


class RTC:
    def datetime(self, t=None):
        if t is None:
            t = time.gmtime(time.time() + _rtc_offset[0])
            return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0)
        want = time.mktime((t[0], t[1], t[2], t[4], t[5], t[6], 0, 0))
        _rtc_offset[0] = want - time.time()

    def init(self, t):
        self.datetime(t)
