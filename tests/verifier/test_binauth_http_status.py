"""POST /v1/binauth: the HTTP status of every reply status, written out from docs/protocol.md 3.5
(200 OK; 400 MALFORMED; 401 SIGNATURE, UNKNOWN_DEVICE; 403 NOT_ACTIVE; 409 TIME_SYNC, REPLAY;
429 RATE_LIMITED, LOCKED_OUT), never taken from the code's own HTTP_STATUS table. Each case brings
the verifier (the app from create_app on a tmp_path SQLite file) to the state that produces the
status, then checks the reply's status byte (docs/protocol.md 3.3) and the HTTP code together."""

import pytest

from tests.support import AuthDevice

OCTETS = {"Content-Type": "application/octet-stream"}


async def post(client, body):
    r = await client.post("/v1/binauth", data=body, headers=OCTETS)
    data = await r.read()
    assert r.content_type == "application/octet-stream"
    return r.status, data


def device(tenant, clock, status="active"):
    (hex_id, master), = tenant.provision([{}], status)
    return AuthDevice(hex_id, master, clock)


def forged(req):
    return req[:19] + bytes((req[19] ^ 0x01,))


async def case_ok(client, tenant, clock):
    return device(tenant, clock).request(clock())


async def case_time_sync(client, tenant, clock):
    return device(tenant, clock).request(clock() - 3600)


async def case_signature(client, tenant, clock):
    return forged(device(tenant, clock).request(clock()))


async def case_signature_under_another_key(client, tenant, clock):
    dev, other = device(tenant, clock), device(tenant, clock)
    return dev.id + other.request(clock())[8:]


async def case_unknown_device(client, tenant, clock):
    return bytes.fromhex("00112233445566770000000000000000") + bytes(4)


async def case_not_active(client, tenant, clock):
    return device(tenant, clock, status="suspended").request(clock())


async def case_replay(client, tenant, clock):
    req = device(tenant, clock).request(clock())
    assert (await post(client, req))[0] == 200
    return req


async def case_rate_limited(client, tenant, clock):
    dev = device(tenant, clock)
    for i in range(10):                                # the default device bucket holds 10
        assert (await post(client, dev.request(clock() + i)))[0] == 200
    return dev.request(clock() + 10)


async def case_locked_out(client, tenant, clock):
    dev = device(tenant, clock)
    bad = forged(dev.request(clock()))
    for _ in range(9):                                 # lockout_failures 5 (default); bucket 10
        status, data = await post(client, bad)
        if data[0] != 0x02:
            break
    assert data[0] == 0x07, data                        # it locked within the device's bucket
    return dev.request(clock())                         # even a genuine request is refused now


async def case_malformed_short(client, tenant, clock):
    return device(tenant, clock).request(clock())[:19]


async def case_malformed_long(client, tenant, clock):
    return device(tenant, clock).request(clock()) + b"\x00"


async def case_malformed_empty(client, tenant, clock):
    return b""


# case -> (status byte of the reply, HTTP status, reply length)
CASES = {
    case_ok: (0x00, 200, 25),
    case_time_sync: (0x01, 409, 13),
    case_signature: (0x02, 401, 13),
    case_signature_under_another_key: (0x02, 401, 13),
    case_unknown_device: (0x03, 401, 13),
    case_not_active: (0x04, 403, 13),
    case_replay: (0x05, 409, 13),
    case_rate_limited: (0x06, 429, 13),
    case_locked_out: (0x07, 429, 13),
    case_malformed_short: (0x08, 400, 13),
    case_malformed_long: (0x08, 400, 13),
    case_malformed_empty: (0x08, 400, 13),
}


@pytest.mark.parametrize("case", CASES, ids=lambda f: f.__name__[5:])
async def test_binauth_http_status_is_the_documented_one(client, tenant_a, clock, case):
    req = await case(client, tenant_a, clock)
    code, status, length = CASES[case]
    http, data = await post(client, req)
    assert (data[0], http, len(data)) == (code, status, length)


async def test_forged_tag_is_never_answered_200(client, tenant_a, clock):
    """Every single-bit change of a genuine request's tag is a 401 SIGNATURE, never a 200."""
    dev = device(tenant_a, clock)
    req = dev.request(clock())
    for bit in range(64):
        i = 12 + bit // 8
        bad = req[:i] + bytes((req[i] ^ (1 << bit % 8),)) + req[i + 1:]
        http, data = await post(client, bad)
        assert (http, data) == (401, b"\x02" + bytes(12)), bit
        clock.advance(10)                              # two tokens back (0.2/s): stay within the bucket
        if bit % 4 == 3:
            assert (await post(client, dev.request()))[0] == 200   # resets the failure count
