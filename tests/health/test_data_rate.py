"""Traffic reported in health reports feeds the fleet's data rate (docs/health.md 3 "Data rate", docs/fleet.md 2):
the deltas of bytes_rx/bytes_tx against the device's previous report in memory, the new value after a
reboot or a decrease, nothing for a first report; end to end over UDP piggy-backs to GET /v1/fleet/status."""

import aiohttp
import pytest

from tests.health.test_piggyback_udp import datagram
from verifier.appkeys import CORE, STORAGE
from verifier.binauth.core import OK
from verifier.fleet import routes as fleet_routes
from verifier.health.core import byte_deltas, encode

PREV = {"bytes_rx": 65000, "bytes_tx": 1048577, "boot_count": 12, "uptime_s": 86461}


@pytest.mark.parametrize("history,latest,expected", [
    ([], {"bytes_rx": 65000, "bytes_tx": 1048577}, (0, 0)),                  # no baseline: nothing counted
    ([PREV], dict(PREV, bytes_rx=66800, bytes_tx=1049477, uptime_s=86521), (1800, 900)),
    ([PREV], dict(PREV, uptime_s=86521), (0, 0)),                            # nothing moved
    ([PREV], {"bytes_rx": 66800}, (1800, 0)),                                # tx not reported this time
    ([PREV, {"heap_free": 1}], {"bytes_rx": 65100, "bytes_tx": 1048677}, (100, 100)),   # last report WITH the counter
    ([PREV], dict(PREV, bytes_rx=300, bytes_tx=200, boot_count=13, uptime_s=60), (300, 200)),   # rebooted
    ([PREV], dict(PREV, bytes_rx=70000, bytes_tx=1050000, boot_count=13), (70000, 1050000)),   # rebooted, rose
    ([PREV], dict(PREV, bytes_rx=70000, bytes_tx=1050000, uptime_s=5), (70000, 1050000)),      # uptime went down
    ([{"bytes_rx": 4294967000, "bytes_tx": 10}], {"bytes_rx": 704, "bytes_tx": 15}, (704, 5)),  # rx wrapped
])
def test_byte_deltas(history, latest, expected):
    assert byte_deltas(history, latest) == expected


async def fleet_rate(server, tenant):
    fleet_routes.flush(server.app[STORAGE], server.app[CORE].perf, server.config.clock())
    async with aiohttp.ClientSession() as s:
        async with s.get(server.handle.url + "/v1/fleet/status", headers=tenant.headers) as r:
            assert r.status == 200
            return (await r.json())["performance"]["data_rate_bps"]


async def test_reported_traffic_gives_the_fleet_data_rate(server, tenant, clock):
    dev, other = tenant.device(), tenant.device()
    reports = [
        (dev, {"boot_count": 12, "bytes_rx": 65000, "bytes_tx": 1048577}, 0.0),   # first: the baseline only
        (other, {"bytes_rx": 5000, "bytes_tx": 5000}, 0.0),                       # another device's baseline
        (dev, {"boot_count": 12, "bytes_rx": 66800, "bytes_tx": 1049477}, 6.0),   # +2700 bytes: 2700*8/3600
        (dev, {"boot_count": 13, "bytes_rx": 450, "bytes_tx": 450}, 8.0),         # rebooted: +900
        (other, {"bytes_rx": 5100, "bytes_tx": 4000}, 17.111),     # +100 rx, tx down: +4000 (7700*8/3600)
    ]
    for d, fields, rate in reports:
        clock.advance(60)
        _, dg = datagram(d, encode(fields))
        assert (await server.send("udp", dg))[0] == OK
        assert await fleet_rate(server, tenant) == rate
