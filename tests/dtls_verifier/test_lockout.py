"""The DTLS PSK lockout (docs/protocol.md sections 3.4 and 4.3): per device and source host, with the
device's failure budget for hosts it was not accepted from, and its own state (binary-auth failures do
not count against DTLS, nor the reverse). Handshakes are driven in-process through the verifier's own
DTLSServer and DTLSAuth (RawClient), the clock injected; the audit rows are read from SQLite."""

import os

import pytest

from tests.dtls_verifier.conftest import T0
from tests.dtls_verifier.rawclient import RawClient
from tests.support import AuthDevice
from verifier.appkeys import DTLS
from verifier.dtls.server import Established, Refused

GENUINE = "192.0.2.10"


def handshake(verifier, device, host, now, psk=None, port=40000):
    """One full handshake from (host, port) at `now`, events fed to DTLSAuth as the driver does;
    the audit result ("OK", "SIGNATURE", "LOCKED_OUT", ...)."""
    endpoint = verifier.app[DTLS]
    c = RawClient(endpoint.server, (host, port), device.identity.encode(), device.psk, now=now)
    c.hello()
    c.finish(psk)
    for ev in c.events:
        if type(ev) is Established:
            endpoint.auth.established(ev, now)
        elif type(ev) is Refused:
            endpoint.auth.refused(ev, now)
    endpoint.auth.flush()
    return [r for r in verifier.all_audit() if r["action"] == "dtls"][-1]["result"]


WRONG = bytes(32)


async def test_fifth_wrong_key_answers_signature_and_the_next_handshake_locked_out(verifier, device):
    out = [handshake(verifier, device, GENUINE, T0, WRONG) for _ in range(5)]
    out.append(handshake(verifier, device, GENUINE, T0))               # the right key too
    assert out == ["SIGNATURE"] * 5 + ["LOCKED_OUT"]


async def test_dtls_lockout_ends_lockout_s_after_the_whole_second_of_the_fifth_failure(verifier, device):
    for _ in range(5):
        handshake(verifier, device, GENUINE, T0 + 0.9, WRONG)
    assert handshake(verifier, device, GENUINE, T0 + 299.999) == "LOCKED_OUT"
    assert handshake(verifier, device, GENUINE, T0 + 300.0) == "OK"


async def test_wrong_keys_from_other_hosts_cannot_lock_out_device_over_dtls(verifier, device):
    """Before the fix, 5 wrong handshakes from anywhere locked the device out for 300 s."""
    assert handshake(verifier, device, GENUINE, T0) == "OK"
    out = []
    for minute in range(10):
        now = T0 + 1 + minute * 60
        for h in range(10):
            handshake(verifier, device, f"10.0.0.{h}", now, WRONG, port=5000 + minute)
        out.append(handshake(verifier, device, GENUINE, now))
    assert out == ["OK"] * 10


async def test_total_wrong_handshakes_per_device_bounded_across_many_hosts(verifier, device):
    """500 hosts, one wrong handshake each, one per second: 5 + one per 60 s (5 per 300 s) evaluated."""
    out = [handshake(verifier, device, f"10.1.{i // 256}.{i % 256}", T0 + i, WRONG) for i in range(500)]
    assert out.count("SIGNATURE") == 13 and out.count("LOCKED_OUT") == 487


async def test_right_key_from_new_host_gets_budget_token_back(verifier, device):
    out = [handshake(verifier, device, f"10.2.0.{i}", T0 + i) for i in range(8)]
    out += [handshake(verifier, device, f"10.3.0.{i}", T0 + 8, WRONG) for i in range(6)]
    assert out == ["OK"] * 8 + ["SIGNATURE"] * 5 + ["LOCKED_OUT"]


async def test_refusal_for_device_state_does_not_reset_failures_over_dtls(verifier, device):
    assert handshake(verifier, device, GENUINE, T0) == "OK"
    out = [handshake(verifier, device, GENUINE, T0 + 1, WRONG) for _ in range(4)]
    verifier.storage.update_device(verifier.tenant["id"], device.id, {"status": "suspended"})
    verifier.app[DTLS].auth.forget(device.id)
    out.append(handshake(verifier, device, GENUINE, T0 + 2))          # right key: access_denied
    out.append(handshake(verifier, device, GENUINE, T0 + 3, WRONG))
    out.append(handshake(verifier, device, GENUINE, T0 + 3))
    assert out == ["SIGNATURE"] * 4 + ["NOT_ACTIVE", "SIGNATURE", "LOCKED_OUT"]


@pytest.mark.parametrize("first", ["binauth", "dtls"])
async def test_binauth_and_dtls_failures_do_not_share_a_lockout(verifier, device, first):
    """Each protocol's key has its own lockout: locking one out leaves the other usable."""
    core = verifier.handle.core
    dev = AuthDevice(device.hex, device.master.hex())
    if first == "binauth":
        for _ in range(5):
            bad = bytearray(dev.request(T0))
            bad[12] ^= 0xFF
            core.handle(bytes(bad), (GENUINE, 1), T0, "test")
        assert core.handle(dev.request(T0), (GENUINE, 1), T0, "test")[0][0] == 7      # LOCKED_OUT
        assert handshake(verifier, device, GENUINE, T0) == "OK"
    else:
        for _ in range(5):
            handshake(verifier, device, GENUINE, T0, WRONG)
        assert handshake(verifier, device, GENUINE, T0) == "LOCKED_OUT"
        assert core.handle(dev.request(T0), (GENUINE, 1), T0, "test")[0][0] == 0      # OK


async def test_unknown_identities_leave_no_lockout_state(verifier):
    endpoint = verifier.app[DTLS]
    before = verifier.storage.limits.sizes()[1:]
    for i in range(200):
        c = RawClient(endpoint.server, (f"10.4.0.{i}", 1), b"%016x@acme" % i, os.urandom(32), now=T0)
        c.hello()
        c.finish()
    assert verifier.storage.limits.sizes()[1:] == before
