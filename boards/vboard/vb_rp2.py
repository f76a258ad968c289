# `rp2` on the virtual Pico W: the pieces a board's code reaches for (MicroPython code; host
# tooling, never installed on a device). From the MicroPython docs (library/rp2.html,
# rp2.Flash.html): rp2.Flash(), the block device of the filesystem region at the end of the flash
# (the same blocks LittleFS is mounted on, readblocks/writeblocks/ioctl), country() (the Wi-Fi
# regulatory country, two letters, default "XX" as the cyw43 driver's worldwide setting), and
# bootsel_button() (the BOOTSEL button: never pressed here). PIO, StateMachine and DMA are not
# emulated: janua does not use them.
_ctx = None
_country = ["XX"]
_Window = None


def init(ctx):
    global _ctx, _Window
    from vb_flashchip import Window   # now: after setup the emulation's files are out of reach
    _ctx = ctx
    _Window = Window


def Flash():
    off, size = _ctx.spec["fs"]
    return _Window(_ctx.chip, off, size)


def country(code=None):
    if code is None:
        return _country[0]
    if len(code) != 2:
        raise ValueError("country code must be 2 letters")
    _country[0] = code


def bootsel_button():
    return 0
