"""TLS and addressing for janua.mqtt: the DER credentials on flash, the client SSLContext, the
umqtt.simple client in either constructor shape, and the broker's address. Also the MQTT error
classes (janua.mqtt re-exports them).

umqtt.simple <= 1.3 takes `ssl=True, ssl_params={...}` for `ussl.wrap_socket`; >= 1.4 takes
`ssl=<SSLContext>`. `make_client` tries the old shape first (the new one raises TypeError on
`ssl_params`); the reverse order would silently connect without a client certificate, because the
old constructor accepts any `ssl` value. It does not open connections.
"""

from micropython import const
from janua import JanuaError, StoreError, TransportError

_MAX_DER = const(4096)     # an RSA-2048 key is ~1.2 KB in DER, a P-256 certificate ~0.5 KB
_CERT_REQUIRED = const(2)  # tls.CERT_REQUIRED / ssl.CERT_REQUIRED on every port


class MQTTError(JanuaError):
    """The MQTT session failed: the broker closed it or sent something unexpected."""


class MQTTRefused(MQTTError):
    """The broker refused the CONNECT (`code` is the CONNACK code) or a subscription (code 0x80)."""

    def __init__(self, msg, code):
        super().__init__(msg)
        self.code = code


class MQTTTLSError(MQTTError):
    """The TLS handshake with the broker failed (untrusted broker, rejected client certificate, bad key)."""


class MQTTUnavailable(MQTTError):
    """umqtt.simple is not installed on this board."""


def read_der(path, fs=None):
    """The bytes of a DER file on flash; StoreError if it is missing, empty or over 4 KB."""
    try:
        f = fs.open(path, "rb") if fs is not None else open(path, "rb")
    except OSError:
        raise StoreError("%s not found (provision with --credential certificate)" % path)
    try:
        data = f.read(_MAX_DER + 1)
    finally:
        f.close()
    if not data or len(data) > _MAX_DER:
        raise StoreError("%s is empty or over %d bytes" % (path, _MAX_DER))
    return data


def tls_context(ca, cert=None, key=None):
    """A client SSLContext that requires the broker's certificate to chain to `ca` (DER) and,
    given cert/key (DER), presents them."""
    try:
        import tls    # native: positional arguments only
        named = False
    except ImportError:
        import ssl as tls   # micropython-lib's ssl wrapper (keyword arguments)
        named = True
    try:
        ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = tls.CERT_REQUIRED
        if named:
            ctx.load_verify_locations(cadata=ca)
        else:
            ctx.load_verify_locations(ca)
        if cert is not None:
            ctx.load_cert_chain(cert, key)
    except (OSError, ValueError) as e:
        raise MQTTTLSError("cannot load the TLS credentials (%s)" % (e,))
    return ctx


def _nodelay(sock):
    # umqtt.simple writes one packet in several small writes (header, body, each string); with
    # Nagle's algorithm every write after the first waits for the broker's delayed ACK (40 ms on
    # Linux, up to 250 ms with lwIP). IPPROTO_TCP = 6 and TCP_NODELAY = 1 on Linux and lwIP; a
    # port that refuses it keeps Nagle.
    try:
        sock.setsockopt(6, 1, 1)
    except (OSError, AttributeError, TypeError):
        pass


class _NamedContext:
    # umqtt.simple >= 1.4 calls ctx.wrap_socket(sock, server_hostname=<the host it dialled>);
    # this wrapper checks the broker against the configured name instead (the IP is dialled while
    # the certificate names the host) and turns Nagle off first.
    def __init__(self, ctx, name):
        self.ctx = ctx
        self.name = name

    def wrap_socket(self, sock, server_hostname=None):
        _nodelay(sock)
        return self.ctx.wrap_socket(sock, server_hostname=self.name)


class _LegacyTLS:
    # What umqtt.simple <= 1.3 gets from its `import ussl` while connect_client() runs: the port's
    # ussl (before 1.21) or ssl module, with Nagle turned off on the socket first.
    def __init__(self, mod):
        self.mod = mod

    def wrap_socket(self, sock, **params):
        _nodelay(sock)
        return self.mod.wrap_socket(sock, **params)


def connect_client(client, api):
    """client.connect(); for the <= 1.3 shape `ussl` is _LegacyTLS during the call only."""
    if api != "ssl_params":
        return client.connect()
    import sys
    saved = sys.modules.get("ussl")
    try:
        import ussl as mod
    except ImportError:   # MicroPython >= 1.21 has only `ssl`
        import ssl as mod
    sys.modules["ussl"] = _LegacyTLS(mod)
    try:
        return client.connect()
    finally:
        if saved is None:
            del sys.modules["ussl"]
        else:
            sys.modules["ussl"] = saved


def make_client(MQTTClient, client_id, s, user, password, ca, cert=None, key=None):
    """(umqtt client, "ssl_params" | "context") for either umqtt.simple constructor shape; open it
    with connect_client(client, shape)."""
    params = {"cadata": ca, "cert_reqs": _CERT_REQUIRED, "server_hostname": s["server_hostname"]}
    if cert is not None:
        params["cert"] = cert
        params["key"] = key
    args = (client_id, s["host"], s["port"], user, password, s["keepalive"])
    try:
        return MQTTClient(*args, ssl=True, ssl_params=params), "ssl_params"
    except TypeError:
        pass
    ctx = _NamedContext(tls_context(ca, cert, key), s["server_hostname"])
    return MQTTClient(*args, ssl=ctx), "context"


def resolve(host, port):
    """The IP address to dial (umqtt then resolves nothing): TransportError if the name does not
    resolve. TLS still checks the configured name, so dialling the IP weakens nothing."""
    import socket
    try:
        return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0][-1]
    except (OSError, IndexError) as e:
        raise TransportError("cannot resolve the broker %s (%s)" % (host, e))


def ip_of(addr):
    # getaddrinfo gives ("1.2.3.4", port) on the bare-metal ports and a packed sockaddr_in on the
    # unix port (family 2 in its first two bytes, the address at 4..8). None: dial the name.
    if isinstance(addr, tuple):
        return addr[0]
    if len(addr) >= 8 and addr[0] == 2 and addr[1] == 0:
        return "%d.%d.%d.%d" % (addr[4], addr[5], addr[6], addr[7])
    return None
