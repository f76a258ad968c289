"""HTTPS for the device's HTTP calls to the verifier (docs/protocol.md 3.5): binary auth over HTTP, tokens and
sync, the OTA check and downloads, attestation. On when janua.json `server.tls` is true; the verifier's
certificate must chain to the CA written at provisioning (`janua_server_ca.der`, DER) and name the host.

mbedTLS checks the certificate's validity period against the board's clock, which starts at the epoch after a
power cut. `context()` therefore sets the board's clock (hal.set_time) to the last authenticated server time in
the state file first, when the clock is that far off; `app.run()` sets it to the server's time after each
authentication. Loaded only when TLS is on: a plain-HTTP board never imports it.
"""

import time
from janua import StoreError, TransportError

CA_FILE = "janua_server_ca.der"
_MAX_DER = 4096
_SANE_YEAR = 2024       # a clock before this has not been set since the board powered up


def _ca(path):
    try:
        with open(path, "rb") as f:
            n = f.seek(0, 2)            # its size first: the read allocates exactly that
            if not 0 < n <= _MAX_DER:
                raise StoreError("%s is empty or over %d bytes" % (path, _MAX_DER))
            f.seek(0)
            return f.read(n)
    except OSError:
        raise StoreError("%s not found (provision with --server-ca)" % path)


def _last_time(state_file):
    # the server time of the last authentication (janua_state.json "at"), or None
    try:
        import json
        with open(state_file) as f:
            st = json.load(f)
        at = st.get("at")
        return at if st.get("clock_source") == "server" and isinstance(at, int) else None
    except (OSError, ValueError, AttributeError):
        return None


def set_clock(unix, hal=None):
    """Set the board's clock (the one mbedTLS reads) to `unix` seconds through the hal, if it can."""
    if hal is None:
        try:
            import janua_hal as hal
        except ImportError:
            return False
    f = getattr(hal, "set_time", None)
    return bool(f and f(unix))


def context(cfg, hal=None, state_file="janua_state.json"):
    """A client TLS context that requires the verifier's certificate to chain to the provisioned CA, or None
    when cfg server.tls is off. StoreError without the CA file."""
    srv = cfg.get("server") or {}
    if srv.get("tls") is not True:
        return None
    ca = _ca(CA_FILE)
    if time.gmtime()[0] < _SANE_YEAR:
        at = _last_time(state_file)
        if at is not None:
            set_clock(at, hal)
    try:
        import tls
    except ImportError:
        raise TransportError("this firmware has no tls module: HTTPS is not available")
    import gc
    gc.collect()    # the context takes a 3 KiB block in one piece: collect first, so fragments of garbage
                    # cannot leave the heap without one (seen on the esp32 heap)
    try:
        ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = tls.CERT_REQUIRED
        ctx.load_verify_locations(ca)
    except (OSError, ValueError) as e:
        raise TransportError("cannot load %s: %s" % (CA_FILE, e))
    return ctx


def wrap(sock, ctx, host):
    """The TLS socket over `sock`, the verifier checked against the CA and `host`; TransportError if not."""
    try:
        sock.setsockopt(6, 1, 1)    # TCP_NODELAY: a request is two TLS records, and Nagle would hold the second
    except (OSError, AttributeError, TypeError):      # for the server's delayed ACK (40 ms on Linux)
        pass
    try:
        return ctx.wrap_socket(sock, server_hostname=host)
    except (OSError, ValueError) as e:
        raise TransportError("TLS with %s failed: %s (is janua_server_ca.der the CA of its certificate, "
                             "for this host name, and the board's clock set?)" % (host, str(e).strip()))
