"""janua: device authentication for MicroPython boards (the device package).

This module only defines the version, the exception tree and a lazy `probe()`. It is imported by
every janua module, so it stays tiny: no I/O, no other imports at load time.
"""

__version__ = "0.1.0"

# Health counters since boot, read by janua/health.py (docs/health.md 1): heap_min, auth_failures, errors,
# last_error, clock_offset_s, bytes_tx, bytes_rx. They live on the package object, which main.py's
# unloading keeps, so they count across the boot's steps; a reset clears them.
health_c = [None, 0, 0, None, None, 0, 0]


def sample():
    # the free heap now, noted in the lowest-since-boot counter (called after each authentication and
    # at each report; gc is imported here, not at load time)
    import gc
    n = gc.mem_free()
    if health_c[0] is None or n < health_c[0]:
        health_c[0] = n
    return n


def note_error(e):
    # an error caught by a janua loop: counted, and kept as the report's last_error ("OSError 110")
    health_c[2] += 1
    health_c[3] = "%s %s" % (type(e).__name__, e.args[0] if e.args else "")


class JanuaError(Exception):
    """Root of every error raised by the janua device package."""


class PacketError(JanuaError):
    """A packet is malformed, too long, or its tag does not verify."""


class StoreError(JanuaError):
    """The credential/config store on flash is missing, corrupt or cannot be written."""


class AuthError(JanuaError):
    """Authentication did not reach a session (denied, gave up, or timed out)."""


class TransportError(JanuaError):
    """The network transport failed (resolve, connect, HTTP framing)."""


class OTAError(JanuaError):
    """An update was rejected (signature, key, compatibility, downgrade, digest) or failed."""


class ClaimError(JanuaError):
    """A claim was refused by the verifier, or its answer is malformed or fails its tag."""


class DTLSError(JanuaError):
    """A DTLS handshake failed, the peer sent a fatal alert, or the channel is closed."""


def probe():
    # Imported lazily so that the binauth path never loads caps.py.
    from janua.caps import probe as _probe
    return _probe()


def select_protocol(caps, links=("udp", "tcp"), want=None):
    # The constrained selector (docs/mqtt.md): coap-psk, mqtt-sas, http-basic or custom-binary
    # from probe()'s capabilities. Lazy for the same reason as probe().
    from janua.select import select_protocol as _select
    return _select(caps, links, want)
