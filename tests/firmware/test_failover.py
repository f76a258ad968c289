"""Endpoint failover on the device (janua/failover.py, app.authenticate; docs/protocol.md 3.7), on the unix
port with the esp32 heap: the backoff/jitter schedule from seeded randomness, the order of the endpoints with
the retry window of the preferred one, and app.authenticate's rounds against endpoints that refuse."""

import json

from tests.mosquitto import free_ports

SECRET = "5e" * 32

# a seeded byte source: sha256("seed-1:<n>") for the n-th call, its first k bytes
SEEDED = """
import hashlib
_n = [0]
def rand(k):
    _n[0] += 1
    return hashlib.sha256(b"seed-1:%d" % _n[0]).digest()[:k]
"""


def test_backoff_with_jitter_from_seeded_randomness(mp):
    out = mp(SEEDED + """
import json
from janua.failover import delay_ms
print(json.dumps([delay_ms(r, rand) for r in (1, 2, 3, 4, 5)]))
print(json.dumps([delay_ms(r, lambda k: b"\\x00" * k) for r in (1, 2, 3, 4, 9)]))
print(json.dumps([delay_ms(r, lambda k: b"\\xff" * k) for r in (1, 2, 3, 4, 9)]))
print(json.dumps([delay_ms(r, lambda k: b"\\x80\\x00", 200, 1000) for r in (1, 2, 3, 4)]))
""")
    # the seeded draws are 0x0665, 0x71a8, 0x655c, 0xb937, 0x22b3: half of min(8000, 1000 * 2**(r-1)) plus
    # that half times draw / 65536
    assert out[0] == [512, 1443, 2791, 6893, 4542]
    assert out[1] == [500, 1000, 2000, 4000, 4000]        # no jitter: the floor, capped from round 4
    assert out[2] == [999, 1999, 3999, 7999, 7999]        # all jitter: just under twice the floor
    assert out[3] == [150, 300, 600, 750]                 # janua.json failover backoff_ms/max_backoff_ms


def test_order_keeps_a_backup_first_within_the_retry_window_only(mp):
    out = mp("""
import json
from janua.failover import order, since
st = {"endpoint": [2, "edge2", False], "failover_at": 1000}
print(json.dumps([order(3, st, 1000, 60), order(3, st, 1059, 60), order(3, st, 1060, 60),
                  order(3, st, 999, 60), order(3, {}, 1000, 60), order(2, st, 1000, 60),
                  order(3, {"endpoint": [2, "edge2", False]}, 1000, 60), order(1, {}, 5, 60)]))
print(json.dumps([since(st, 2, 1030, 60), since(st, 2, 1060, 60), since(st, 1, 1030, 60),
                  since(st, 0, 1030, 60), since({}, 1, 1030, 60)]))
""")
    assert out[0] == [[2, 0, 1], [2, 0, 1],
                      [0, 1, 2],           # the window is over: the preferred one first again
                      [0, 1, 2],           # a clock before failover_at (a reset without an RTC)
                      [0, 1, 2], [0, 1],   # no state; a list that no longer has index 2
                      [0, 1, 2], [0]]      # no failover_at
    assert out[1] == [1000, 1060, 1030, None, 1030]


def test_endpoints_and_settings_from_the_config(mp):
    out = mp("""
import json
from janua.failover import endpoints, settings
old = {"server": {"host": "cloud"}}
new = {"server": {"host": "cloud"}, "endpoints": [{"host": "edge1"}, {"host": "cloud"}],
       "failover": {"retry_preferred_s": 30, "rounds": 5}}
print(json.dumps([endpoints(old), endpoints(new), endpoints({"server": {"host": "c"}, "endpoints": []}),
                  settings(old), settings(new)]))
""")
    assert out[0] == [[{"host": "cloud"}], [{"host": "edge1"}, {"host": "cloud"}], [{"host": "c"}],
                      [1, 1000, 8000, 60, 3600],       # a board provisioned before: one round, as before
                      [5, 1000, 8000, 60, 30]]


def _cfg(ports, **extra):
    cfg = {"device_id": "3f9a0c1b7d2e4a65", "master_secret": SECRET, "transport": "udp",
           "server": {"host": "127.0.0.1", "udp_port": ports[-1]},
           "endpoints": [{"host": "127.0.0.1", "udp_port": p} for p in ports]}
    cfg.update(extra)
    return json.dumps(cfg)


DRIVE = SEEDED + """
import json
from janua.app import authenticate
from janua.clock import Clock
waits = []
cfg = json.loads(CFG)
c, via, used = authenticate(cfg, Clock(), 0, None, None, waits.append, rand)
print(json.dumps({"used": used, "via": via, "reason": c.reason, "waits": waits, "last_sent": c.last_sent > 0}))
"""


def test_every_endpoint_refusing_ends_after_the_rounds_with_seeded_waits(mp):
    ports = free_ports(3)           # nothing listens on them: each UDP request gets a port unreachable
    out = mp("CFG = %r\n" % _cfg(ports) + DRIVE)[0]
    assert out["used"] == -1 and out["via"] == "udp" and out["last_sent"]
    assert out["reason"].startswith("network error"), out
    assert out["waits"] == [512, 1443]          # three rounds, two waits: the seeded schedule above


def test_a_name_that_does_not_resolve_fails_over_to_the_next_endpoint(mp):
    ports = free_ports(1)
    cfg = json.loads(_cfg(ports, failover={"rounds": 1}))
    cfg["endpoints"].insert(0, {"host": "edge-gone.invalid", "udp_port": ports[0]})
    cfg["server"]["host"] = "cloud-gone.invalid"     # "endpoints" wins: the server is not tried
    out = mp("CFG = %r\n" % json.dumps(cfg) + DRIVE)[0]
    assert out["used"] == -1 and out["reason"].startswith("network error"), out    # the last one's reason


def test_the_time_bound_stops_the_rounds(mp):
    ports = free_ports(2)
    out = mp("CFG = %r\n" % _cfg(ports, failover={"rounds": 10, "max_s": 1}) + DRIVE)[0]
    # 512 ms, then 512 + 1443 ms would end past 1 s: no third round
    assert out["used"] == -1 and out["waits"] == [512]


def test_run_reports_when_no_endpoint_answered(mp):
    ports = free_ports(2)
    (mp.flash / "janua.json").write_text(_cfg(ports, failover={"rounds": 1}))
    out = mp("""
import json
from janua.app import run
from janua.store import Store
line = run()
print(json.dumps({"line": line, "state": Store().load_state()}))
""")[0]
    assert out["line"].startswith("janua: auth failed: no endpoint answered: network error"), out
    assert out["state"]["result"].startswith("failed: no endpoint answered")
    assert "endpoint" not in out["state"] and "failover_at" not in out["state"]
