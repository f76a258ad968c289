"""janua.token.TokenStore on the MicroPython unix port (esp32 profile): refresh timing with an injected
`now`, what a missing or damaged token.json means, and janua.diag's token/chain lines (no secrets)."""

import json

import pytest

from tests.tokens_device.conftest import DAY, DEV, T0, make_chain

CFG = {"device_id": DEV, "tenant": "acme", "master_secret": "5e" * 32,
       "server": {"host": "127.0.0.1", "http_port": 1}, "transport": "http"}
JWT = "eyJhbGciOiJFUzI1NiIsImtpZCI6IjAxMDIwMzA0In0.eyJzdWIiOiIzZjlhIn0.c2lnbmF0dXJl"

PRELUDE = """
import json
from janua.token import TokenStore
from janua.clock import Clock
from janua import AuthError
cfg = json.loads(%r)
clock = Clock(time_fn=lambda: %d, epoch_offset=0)
""" % (json.dumps(CFG), T0)


def test_refresh_is_due_at_refresh_at_not_before(mp):
    (mp.flash / "token.json").write_text(json.dumps({"token": JWT, "exp": T0 + 3600, "refresh_at": T0 + 3300}))
    out = mp(PRELUDE + """
ts = TokenStore(cfg, clock)
print(json.dumps([[ts.due(t) for t in (%d, %d, %d, %d)], [ts.valid(t) for t in (%d, %d)], ts.bearer(), ts.exp()]))
""" % (T0, T0 + 3299, T0 + 3300, T0 + 4000, T0 + 3599, T0 + 3600))[0]
    assert out[0] == [False, False, True, True]
    assert out[1] == [True, False]
    assert out[2] == "Bearer " + JWT and out[3] == T0 + 3600


@pytest.mark.parametrize("content", [
    None,                                                   # never obtained
    "{not json",                                            # damaged
    json.dumps({"token": JWT, "exp": "soon", "refresh_at": 1}),  # wrong types
    json.dumps({"token": "", "exp": T0 + 3600, "refresh_at": T0 + 3300}),
])
def test_missing_or_damaged_token_file_means_obtain_a_new_one(mp, content):
    if content is not None:
        (mp.flash / "token.json").write_text(content)
    out = mp(PRELUDE + """
ts = TokenStore(cfg, clock)
try:
    b = ts.bearer()
except AuthError:
    b = "no bearer"
print(json.dumps([ts.due(%d), ts.valid(%d), b]))
""" % (T0, T0))[0]
    assert out == [True, False, "no bearer"]


def test_unreachable_verifier_keeps_the_old_token(mp):
    (mp.flash / "token.json").write_text(json.dumps({"token": JWT, "exp": T0 + 3600, "refresh_at": T0 + 3300}))
    out = mp(PRELUDE + """
ts = TokenStore(cfg, clock, timeout=1.0)
try:
    ts.ensure(%d); r = "refreshed"
except OSError as e:
    r = "network"
print(json.dumps([r, TokenStore(cfg, clock).bearer()]))
""" % (T0 + 3400))[0]
    assert out == ["network", "Bearer " + JWT]


def test_diag_shows_token_expiry_and_chain_status_without_token_bytes(mp):
    (mp.flash / "janua.json").write_text(json.dumps(CFG))
    (mp.flash / "token.json").write_text(json.dumps({"token": JWT, "exp": T0 + 3600, "refresh_at": T0 + 3300}))
    toks = make_chain(0, 30)
    (mp.flash / "new.json").write_text(json.dumps([t.hex() for t in toks]))
    p = mp.raw("""
import json
from binascii import unhexlify
from janua.chain import Chain
from janua.clock import Clock
ch = Chain(unhexlify(%r))
ch.top_up(json.load(open("new.json")), 86400, 86400, %d)
ch.mark_used(2)
from janua.diag import report
report(clock=Clock(time_fn=lambda: %d, epoch_offset=0))
""" % (DEV, T0, T0 + 2 * DAY + 10))
    assert p.returncode == 0, p.stderr
    keys = dict(line.split(": ", 1) for line in p.stdout.splitlines())
    assert keys["token"] == "exp=%d refresh_at=%d" % (T0 + 3600, T0 + 3300)
    assert keys["chain"] == "27 unused next_nbf=%d high=29" % (T0 + 3 * DAY)
    assert JWT not in p.stdout and JWT.split(".")[2] not in p.stdout
    for t in toks:
        assert t.hex()[86:] not in p.stdout and t.hex()[:40] not in p.stdout


def test_diag_without_tokens_or_chain(mp):
    p = mp.raw("from janua.diag import report\nreport()\n")
    assert p.returncode == 0, p.stderr
    keys = dict(line.split(": ", 1) for line in p.stdout.splitlines())
    assert keys["token"] == "none" and keys["chain"] == "none"
