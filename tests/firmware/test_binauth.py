"""The binauth client state machine on MicroPython (esp32 heap), with an injected clock.

The server side here is a few lines of test double built on janua.mac (whose output is checked
against RFC 4231 and the shared vectors in test_codec.py)."""

PRELUDE = """
import json, struct
from janua.mac import HMAC
from janua.clock import Clock
from janua import binauth as B, AuthError
K = HMAC(b"k" * 32)
DEV = b"\\x3f\\x9a\\x0c\\x1b\\x7d\\x2e\\x4a\\x65"
T = [1000]
clock = Clock(time_fn=lambda: T[0], epoch_offset=0)

def reply(req, status, server_time, session=None, key=K, tag=True):
    body = struct.pack(">BI", status, server_time)
    if session:
        body += struct.pack(">III", *session)
    t = key.digest(bytes(req), body)[:8] if tag else bytes(8)
    return body + t

def ts(req):
    return struct.unpack(">I", bytes(req)[8:12])[0]
"""


def test_time_sync_sets_clock_and_retries_with_server_time(mp):
    out = mp(PRELUDE + """
c = B.Client(DEV, K, clock)
r1 = c.request()
st = c.receive(reply(r1, 1, 5000))
r2 = c.request()
st2 = c.receive(reply(r2, 0, 5001, (7, 8600, 15)))
print(json.dumps({"ts1": ts(r1), "st": st, "ts2": ts(r2), "st2": st2, "src": clock.source,
                  "now": clock.now(), "result": list(c.result), "attempts": c.attempts}))
""")[0]
    assert out["ts1"] == 1000 and out["st"] == 2  # RETRY
    assert out["ts2"] == 5000 and out["st2"] == 3  # DONE
    assert out["src"] == "server" and out["now"] == 5001
    assert out["result"] == [0, 5001, 7, 8600, 15, True] and out["attempts"] == 2


def test_replay_retries_with_max_of_server_time_and_last_plus_one(mp):
    out = mp(PRELUDE + """
res = []
for server_time, last in ((900, 950), (2000, 950)):
    c = B.Client(DEV, K, clock, last_sent=last)
    r1 = c.request()          # ts = max(now=clock, last+1)
    c.receive(reply(r1, 5, server_time))
    r2 = c.request()
    res.append([ts(r1), ts(r2)])
print(json.dumps(res))
""")[0]
    assert out[0] == [1000, 1001]  # server 900 < last_sent 1000: last + 1
    assert out[1] == [2001, 2002] or out[1][1] == max(2000, out[1][0] + 1)


def test_unauthenticated_error_does_not_touch_clock(mp):
    out = mp(PRELUDE + """
c = B.Client(DEV, K, clock)
r = c.request()
st = c.receive(reply(r, 3, 0, tag=False))
st2 = c.give_up("timeout")
print(json.dumps({"st": st, "now": clock.now(), "src": clock.source, "st2": st2,
                  "reason": c.reason, "last_sent": c.last_sent}))
""")[0]
    assert out["st"] == 1  # still WAITING: an advisory ends nothing
    assert out["now"] == 1000 and out["src"] == "none"
    assert out["st2"] == 4 and "unknown_device" in out["reason"]


def test_spoofed_ok_ignored_and_real_ok_accepted(mp):
    out = mp(PRELUDE + """
c = B.Client(DEV, K, clock)
r = c.request()
other = B.Client(DEV, K, Clock(time_fn=lambda: 77, epoch_offset=0)).request()
sts = [c.receive(reply(r, 0, 9999, (1, 2, 3), key=HMAC(b"x" * 32))),   # wrong key
       c.receive(reply(other, 0, 9999, (1, 2, 3))),                    # other request
       c.receive(reply(r, 1, 9999, key=HMAC(b"x" * 32))),              # spoofed TIME_SYNC
       c.receive(b"\\x00" * 40),                                        # junk
       c.receive(reply(r, 0, 1001, (5, 4600, 15)))]
print(json.dumps({"sts": sts, "now": clock.now(), "result": list(c.result)}))
""")[0]
    assert out["sts"] == [1, 1, 1, 1, 3]
    assert out["now"] == 1001 and out["result"][2] == 5


def test_time_sync_retries_are_bounded(mp):
    out = mp(PRELUDE + """
c = B.Client(DEV, K, clock)
sts = []
for i in range(3):
    r = c.request()
    sts.append(c.receive(reply(r, 1, 5000 + i * 1000)))
try:
    c.request(); extra = "sent"
except AuthError:
    extra = "refused"
print(json.dumps({"sts": sts, "reason": c.reason, "extra": extra, "attempts": c.attempts}))
""")[0]
    assert out["sts"] == [2, 2, 4] and out["attempts"] == 3
    assert "time_sync" in out["reason"] and out["extra"] == "refused"


def test_not_active_is_authenticated_refusal(mp):
    out = mp(PRELUDE + """
c = B.Client(DEV, K, clock)
r = c.request()
print(json.dumps([c.receive(reply(r, 4, 1234)), c.reason, clock.now()]))
""")[0]
    assert out == [4, "not_active", 1234]


def test_clock_detects_2000_epoch(mp):
    out = mp("""
import json
from janua.clock import Clock
c = Clock(time_fn=lambda: 10)
d = Clock(time_fn=lambda: 10, epoch_offset=946684800)
print(json.dumps([c.now(), d.now(), c.source, c.set_at]))
""")[0]
    assert out == [10, 946684810, "none", None]  # the unix port's epoch is 1970
