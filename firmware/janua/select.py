"""The constrained selector: which authentication protocol this board should use, from what its
firmware can do (janua.probe()) and what its network and application need.

    coap-psk       DTLS 1.2 PSK + CoAP (janua.dtlsauth): an encrypted session as well as
                   authentication. Needs UDP and DTLS: the port's native `tls` DTLS with PSK, or
                   janua's own DTLS-lite (AES from cryptolib) and ~16 KB of free heap.
    mqtt-sas       an SAS token as the MQTT password over TLS (janua.sas, janua.mqtt), for boards
                   whose backend is MQTT but that hold no client certificate. Needs TCP, `tls`
                   and umqtt.simple.
    http-basic     HTTP Basic credentials on the verifier's HTTP API (janua.sas): the only
                   choice when the network passes nothing but HTTP over TCP.
    custom-binary  the 20-byte binary auth over UDP (janua.binauth): the smallest code and heap
                   (~1 KB), no TLS; the fallback whenever UDP works.

`select_protocol` is a pure function of its arguments: it imports nothing and does no I/O, so the
host tools can run the same rules on a probe report. It does not authenticate.
"""

from micropython import const
from janua import JanuaError

PROTOCOLS = ("coap-psk", "mqtt-sas", "http-basic", "custom-binary")
# The DTLS-lite handshake peaks at ~12 KB of heap on the unix port (bench: device.dtls.peak_heap_bytes).
DTLS_MIN_FREE = const(16384)


def dtls_capable(caps):
    """True if this firmware can run a DTLS-PSK handshake (natively or with janua's DTLS-lite)."""
    native = ("PROTOCOL_DTLS_CLIENT" in (caps.get("dtls") or ())
              and "psk_identity" in (caps.get("tls_psk") or ()))
    lite = "ECB" in (caps.get("cryptolib") or ()) and "sha256" in (caps.get("hashlib") or ())
    free = caps.get("mem_free")
    roomy = free is None or free >= DTLS_MIN_FREE
    return (native or lite) and roomy


def mqtt_capable(caps):
    """True if this firmware has TLS and umqtt.simple (caps["umqtt"], see `with_umqtt`)."""
    return bool(caps.get("tls")) and bool(caps.get("umqtt"))


def with_umqtt(caps):
    """caps with "umqtt" set: whether umqtt.simple can be imported here (probe() does not load it)."""
    try:
        import umqtt.simple  # noqa: F401
        caps["umqtt"] = True
    except ImportError:
        caps["umqtt"] = False
    return caps


def select_protocol(caps, links=("udp", "tcp"), want=None):
    """One of PROTOCOLS for `caps` (a probe() dict, "umqtt" added by with_umqtt).

    links: what the network lets through, a subset of ("udp", "tcp").
    want:  None (authentication only), "mqtt" (the backend is an MQTT broker), "session" (an
           encrypted channel is needed: only coap-psk gives one) or "smallest" (least code and
           heap). Raises JanuaError when nothing fits.
    """
    udp = "udp" in links
    tcp = "tcp" in links
    if want == "mqtt" and tcp and mqtt_capable(caps):
        return "mqtt-sas"
    if udp and want != "smallest" and dtls_capable(caps):
        return "coap-psk"
    if want == "session":
        raise JanuaError("an encrypted session needs UDP and DTLS, which this board lacks")
    if udp and "sha256" in (caps.get("hashlib") or ()):
        return "custom-binary"
    if tcp and "sha256" in (caps.get("hashlib") or ()):
        return "http-basic"
    raise JanuaError("no authentication protocol fits (links %s, hashlib %s)"
                     % (",".join(links) or "none", caps.get("hashlib")))
