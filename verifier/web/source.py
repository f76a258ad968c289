"""The source address of an HTTP request: what the per-source rate limits and the audit trail's `source`
see. It is the TCP peer, unless the peer is one of the configured trusted proxies (Config.trusted_proxies,
`janua serve --trusted-proxy CIDR`): then it is the right-most address of X-Forwarded-For that is not a
trusted proxy (what the nearest untrusted hop was seen as). The header is ignored from any other peer,
so a client cannot choose its own source (docs/api.md "TLS", "Behind a reverse proxy")."""

import ipaddress

from verifier.appkeys import CONFIG

MAX_HOPS = 32      # entries of X-Forwarded-For looked at, from the right


def parse_networks(values):
    """CIDR strings (a bare address is a /32 or /128) -> a tuple of ip_network; ValueError names a bad one."""
    out = []
    for v in values:
        try:
            out.append(ipaddress.ip_network(v.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an address or CIDR: {v!r}") from None
    return tuple(out)


def _address(text):
    text = text.strip()
    if text.startswith("[") and "]" in text:           # [v6] or [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:                         # v4:port
        text = text.split(":", 1)[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    return addr.ipv4_mapped or addr if addr.version == 6 else addr


def _trusted(addr, networks):
    return any(addr.version == n.version and addr in n for n in networks)


def forwarded_source(peer, forwarded_for, networks):
    """The source of a request from TCP peer `peer` (text or None) with the X-Forwarded-For header values
    `forwarded_for` (a list, all of the request's such headers in order), given trusted `networks`."""
    if not networks or peer is None:
        return peer
    hop = _address(peer)
    if hop is None or not _trusted(hop, networks):
        return peer
    entries = [e for value in forwarded_for for e in value.split(",")]
    for entry in reversed(entries[-MAX_HOPS:]):
        addr = _address(entry)
        if addr is None:            # garbage a trusted proxy passed on: stop at the last hop we believe
            break
        hop = addr
        if not _trusted(addr, networks):
            break
    return str(hop)


def request_source(request):
    """The source address of `request` (see the module doc); None only where aiohttp has no peer."""
    networks = request.app[CONFIG].trusted_proxies
    if not networks:
        return request.remote
    return forwarded_source(request.remote, request.headers.getall("X-Forwarded-For", []), networks)
