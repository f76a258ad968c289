"""X-Forwarded-For (verifier/web/source.py): believed only from a trusted proxy, whose right-most untrusted
entry becomes the request's source (the per-source rate limit, the audit trail's `source`); ignored
from any other peer."""

import ipaddress

import pytest

from tests.support import AdminTenant, AuthDevice
from verifier.app import create_app
from verifier.binauth.core import OK, RATE_LIMITED
from verifier.web.source import forwarded_source, parse_networks

OCTETS = {"Content-Type": "application/octet-stream"}
PROXIES = parse_networks(["10.0.0.0/8", "192.0.2.1"])


@pytest.mark.parametrize("peer,header,source", [
    ("10.1.1.1", ["203.0.113.7"], "203.0.113.7"),                        # one trusted proxy
    ("10.1.1.1", ["198.51.100.9, 203.0.113.7"], "203.0.113.7"),          # the right-most, not the client's claim
    ("10.1.1.1", ["203.0.113.7, 192.0.2.1"], "203.0.113.7"),             # two trusted proxies in a row
    ("10.1.1.1", ["203.0.113.7", "192.0.2.1"], "203.0.113.7"),           # the same as two header lines
    ("10.1.1.1", ["198.51.100.9", "203.0.113.7, 10.2.2.2"], "203.0.113.7"),
    ("10.1.1.1", ["10.3.3.3, 192.0.2.1"], "10.3.3.3"),                   # all trusted: the left-most
    ("10.1.1.1", [], "10.1.1.1"),                                        # a trusted peer without the header
    ("10.1.1.1", ["junk, 203.0.113.7"], "203.0.113.7"),
    ("10.1.1.1", ["203.0.113.7, junk"], "10.1.1.1"),                     # garbage from the proxy: stop there
    ("10.1.1.1", ["[2001:db8::5]:4711"], "2001:db8::5"),
    ("10.1.1.1", ["203.0.113.7:4711"], "203.0.113.7"),
    ("10.1.1.1", ["::ffff:203.0.113.7"], "203.0.113.7"),
    ("203.0.113.50", ["198.51.100.9"], "203.0.113.50"),                  # untrusted peer: header ignored
    ("::ffff:10.1.1.1", ["203.0.113.7"], "203.0.113.7"),                 # a v4 proxy seen on a v6 socket
    ("2001:db8::1", ["203.0.113.7"], "2001:db8::1"),
])
def test_forwarded_source(peer, header, source):
    assert forwarded_source(peer, header, PROXIES) == source


def test_no_trusted_proxies_never_reads_the_header():
    assert forwarded_source("10.1.1.1", ["203.0.113.7"], ()) == "10.1.1.1"


def test_parse_networks():
    assert parse_networks(["10.0.0.0/8", "192.0.2.1", "2001:db8::/32"]) == (
        ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("192.0.2.1/32"), ipaddress.ip_network("2001:db8::/32"))
    with pytest.raises(ValueError, match="not an address or CIDR: 'proxy.local'"):
        parse_networks(["proxy.local"])


async def _auth_sources(aiohttp_client, config, clock, trusted):
    """Two binary auths through the test client (TCP peer 127.0.0.1) claiming two sources; the audit's sources."""
    config.trusted_proxies = parse_networks(trusted)
    client = await aiohttp_client(create_app(config))
    tenant = AdminTenant(client.server.app, "acme", clock)
    [(hex_id, master)] = tenant.provision([{}])
    dev = AuthDevice(hex_id, master, clock)
    for claimed in ("203.0.113.7", "198.51.100.9"):
        req = dev.request()
        r = await client.post("/v1/binauth", data=req, headers=dict(OCTETS, **{"X-Forwarded-For": claimed}))
        assert dev.reply(req, await r.read())["status"] == OK
        clock.advance(1)
    r = await client.get("/v1/audit", params={"device_id": hex_id, "action": "binauth"}, headers=tenant.headers)
    return [e["source"] for e in (await r.json())["entries"] if e["action"] == "binauth"]


async def test_audit_source_from_a_trusted_proxy(aiohttp_client, config, clock):
    assert await _auth_sources(aiohttp_client, config, clock, ["127.0.0.1"]) == ["198.51.100.9", "203.0.113.7"]


async def test_audit_source_ignores_the_header_of_an_untrusted_peer(aiohttp_client, config, clock):
    assert await _auth_sources(aiohttp_client, config, clock, ["10.0.0.0/8"]) == ["127.0.0.1", "127.0.0.1"]


async def _rate_limited(aiohttp_client, config, clock, trusted):
    """With a verifier-wide source budget of 2 (no refill), three auths claiming one source and one
    claiming another: their reply statuses."""
    config.trusted_proxies = parse_networks(trusted)
    config.source_capacity, config.source_refill_per_s = 2.0, 0.0
    client = await aiohttp_client(create_app(config))
    tenant = AdminTenant(client.server.app, "acme", clock)
    [(hex_id, master)] = tenant.provision([{}])
    dev = AuthDevice(hex_id, master, clock)
    out = []
    for claimed in ("203.0.113.7", "203.0.113.7", "203.0.113.7", "198.51.100.9"):
        req = dev.request()
        r = await client.post("/v1/binauth", data=req, headers=dict(OCTETS, **{"X-Forwarded-For": claimed}))
        out.append((await r.read())[0])
        clock.advance(1)
    return out


async def test_source_rate_limit_per_forwarded_client(aiohttp_client, config, clock):
    assert await _rate_limited(aiohttp_client, config, clock, ["127.0.0.0/8"]) == [OK, OK, RATE_LIMITED, OK]


async def test_source_rate_limit_shared_without_a_trusted_proxy(aiohttp_client, config, clock):
    assert await _rate_limited(aiohttp_client, config, clock, []) == [OK, OK, RATE_LIMITED, RATE_LIMITED]


def test_handlers_take_the_source_from_the_one_helper():
    from pathlib import Path
    root = Path(__file__).parents[2] / "verifier"
    users = sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if "request.remote" in p.read_text())
    assert users == ["web/source.py"]
