"""Continuous attestation (docs/attestation.md 5): challenges handed out at check-in when due, missed
deadlines, quarantine lifted by an affirming result (only attestation's own), the policy and its group
overrides, the bounded history, the EAR verified with the JWKS alone, and the store's migration."""

import base64
import sqlite3

from cryptography.hazmat.primitives.asymmetric import ec

from tests.attest.conftest import APP, attestation, challenge, events, ota_check, publish_release, submit
from verifier.appkeys import STORAGE
from verifier.attest import core as attest, ear
from verifier.store import SQLiteStorage


async def test_ota_check_carries_the_challenge_when_due(client, tenant, board, signing, tmp_path, clock):
    await publish_release(client, tenant, signing, tmp_path)
    first = await ota_check(client, board)
    assert set(first["attest"]) == {"nonce", "expires_at"}
    assert first["attest"]["expires_at"] == int(clock()) + 300
    again = await ota_check(client, board)                         # outstanding: the same one
    assert again["attest"] == first["attest"]
    assert (await submit(client, board.evidence(first["attest"]["nonce"])))[0] == 200
    clock.advance(3599)
    assert "attest" not in await ota_check(client, board)          # attested less than interval_s ago
    clock.advance(1)
    due = await ota_check(client, board)
    assert due["attest"]["nonce"] != first["attest"]["nonce"]
    assert client.app[STORAGE].get_challenge(board.id)["reason"] == "periodic"


async def test_interval_zero_turns_continuous_attestation_off(client, tenant, board):
    r = await client.put("/v1/attest/policy", json={"interval_s": 0}, headers=tenant.headers)
    assert (r.status, await r.json()) == (200, {"interval_s": 0, "deadline_s": 300, "quarantine": True})
    assert "attest" not in await ota_check(client, board)


async def test_group_override_applies_to_its_devices_only(client, tenant):
    [grouped] = tenant.boards(1, metadata={"group": "lab"})
    [plain] = tenant.boards(1)
    r = await client.put("/v1/attest/policy/groups/lab", json={"interval_s": 0, "deadline_s": 60},
                         headers=tenant.headers)
    assert (await r.json()) == {"group": "lab", "interval_s": 0, "deadline_s": 60, "quarantine": True,
                                "overrides": {"interval_s": 0, "deadline_s": 60}}
    assert "attest" not in await ota_check(client, grouped)
    assert "attest" in await ota_check(client, plain)
    r = await client.put("/v1/attest/policy/groups/lab", json={"interval_s": None}, headers=tenant.headers)
    assert (await r.json())["interval_s"] == 3600                  # null: inherits again
    r = await client.put("/v1/attest/policy", json={"deadline_s": 5}, headers=tenant.headers)
    assert r.status == 400


async def test_missed_deadline_goes_to_warning(client, tenant, board, signing, tmp_path, clock):
    await publish_release(client, tenant, signing, tmp_path)
    assert (await submit(client, board.evidence((await ota_check(client, board))["attest"]["nonce"])))[0] == 200
    clock.advance(3600)
    nonce = (await ota_check(client, board))["attest"]["nonce"]
    st = client.app[STORAGE]
    assert attest.sweep(st, clock()) == 0                          # not yet past its deadline
    clock.advance(300)
    assert attest.sweep(st, clock()) == 1
    view = await attestation(client, tenant, board)
    assert (view["attestation_status"], view["trust_level"], view["challenge"]) == ("warning", 40, None)
    assert events(st, tenant.id) == ["attestation.missed"]
    rows = [(a["result"], a["reason"]) for a in st.list_audit(tenant.id, board.hex) if a["action"] == "DEVICE_ATTESTATION"]
    assert rows[0] == ("warning", "missed")
    status, body = await submit(client, board.evidence(nonce))    # too late
    assert (status, body["error"]) == (409, "stale_nonce")


async def test_a_missed_challenge_is_not_reissued_at_every_check_in(client, tenant, board, clock):
    """A board that never answers (no attestation firmware) must not get a new challenge, and the
    tenant a new attestation.missed, at every check-in: the next one waits interval_s after the miss."""
    assert "attest" in await ota_check(client, board)
    clock.advance(300)
    assert "attest" not in await ota_check(client, board)         # the miss is marked here, no new one
    assert attest.sweep(client.app[STORAGE], clock()) == 0
    clock.advance(3599)
    assert "attest" not in await ota_check(client, board)
    clock.advance(1)
    assert "attest" in await ota_check(client, board)
    assert events(client.app[STORAGE], tenant.id) == ["attestation.missed"]


async def test_missed_deadline_keeps_a_lower_trust_level(client, tenant, board, clock):
    client.app[STORAGE].update_device(tenant.id, board.id, {"trust_level": 10})
    await challenge(client, tenant, board)
    clock.advance(300)
    attest.sweep(client.app[STORAGE], clock())
    assert (await attestation(client, tenant, board))["trust_level"] == 10


async def test_affirming_lifts_the_quarantine_attestation_set(client, tenant, board, signing, tmp_path):
    await publish_release(client, tenant, signing, tmp_path)
    bad = dict(APP, **{"app.py": "tampered\n"})
    assert (await submit(client, board.evidence(await challenge(client, tenant, board), app=bad)))[1]["quarantined"]
    status, body = await submit(client, board.evidence(await challenge(client, tenant, board)))
    assert (status, body["status"], body["quarantined"], body["trust_level"]) == (200, "affirming", False, 70)
    assert events(client.app[STORAGE], tenant.id) == ["attestation.failed", "device.quarantined", "device.released"]
    r = await client.post("/v1/binauth", data=board.request())
    assert r.status == 200


async def test_affirming_does_not_lift_an_operators_quarantine(client, tenant, board, signing, tmp_path):
    await publish_release(client, tenant, signing, tmp_path)
    r = await client.patch(f"/v1/devices/{board.hex}", json={"quarantined": True}, headers=tenant.headers)
    assert r.status == 200
    status, body = await submit(client, board.evidence(await challenge(client, tenant, board)))
    assert (status, body["status"], body["quarantined"]) == (200, "affirming", True)
    assert events(client.app[STORAGE], tenant.id) == []


async def test_quarantine_off_by_policy(client, tenant, board, signing, tmp_path):
    await publish_release(client, tenant, signing, tmp_path)
    await client.put("/v1/attest/policy", json={"quarantine": False}, headers=tenant.headers)
    _, body = await submit(client, board.evidence(await challenge(client, tenant, board), app={"main.py": "x\n"}))
    assert (body["status"], body["quarantined"]) == ("contraindicated", False)
    assert events(client.app[STORAGE], tenant.id) == ["attestation.failed"]


def _jwks_keys(doc):
    def num(s):
        return int.from_bytes(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)), "big")
    return {k["kid"]: ec.EllipticCurvePublicNumbers(num(k["x"]), num(k["y"]), ec.SECP256R1()).public_key()
            for k in doc["keys"]}


async def test_ear_verifies_with_the_jwks_alone(client, tenant, board, signing, tmp_path, clock):
    await publish_release(client, tenant, signing, tmp_path)
    nonce = await challenge(client, tenant, board)
    _, body = await submit(client, board.evidence(nonce))
    r = await client.get(f"/v1/devices/{board.hex}/attestation/ear", headers=tenant.headers)
    token = (await r.json())["ear"]
    assert token == body["ear"]
    jwks = await (await client.get("/.well-known/jwks.json")).json()
    claims = ear.verify_ear(token, _jwks_keys(jwks), int(clock()))
    sub = claims["submods"][board.hex]
    assert sub["ear.status"] == "affirming"
    assert sub["ear.trustworthiness-vector"] == {"instance-identity": 2, "executables": 2, "file-system": 2}
    assert sub["ear.appraisal-policy-id"] == "janua/board/v1"
    assert sub["janua.trust-level"] == 70
    assert claims["eat_nonce"] == base64.urlsafe_b64encode(bytes.fromhex(nonce)).rstrip(b"=").decode()
    assert claims["exp"] == int(clock()) + 3600


async def test_history_keeps_the_newest_50(client, tenant, board):
    for _ in range(53):
        assert (await submit(client, board.evidence(await challenge(client, tenant, board))))[0] == 200
    view = await attestation(client, tenant, board)
    assert len(view["history"]) == 50
    assert len(client.app[STORAGE].list_attest_results(board.id, 1000)) == 50


async def test_no_ear_before_the_first_result(client, tenant, board):
    r = await client.get(f"/v1/devices/{board.hex}/attestation/ear", headers=tenant.headers)
    assert r.status == 404


async def test_other_tenants_device_is_not_found(client, tenant, board, clock):
    from tests.attest.conftest import Tenant
    other = Tenant(client.app, "other", clock)
    for path in (f"/v1/devices/{board.hex}/attestation", f"/v1/devices/{board.hex}/attestation/ear"):
        assert (await client.get(path, headers=other.headers)).status == 404
    assert (await client.post(f"/v1/devices/{board.hex}/attest", headers=other.headers)).status == 404


def test_migration_adds_the_device_columns(tmp_path):
    path = str(tmp_path / "old.db")
    SQLiteStorage(path).close()
    db = sqlite3.connect(path)
    # a file that old has no fleet triggers either (they read attestation_status: docs/fleet.md 3)
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'fleet%'").fetchall():
        db.execute(f"DROP TRIGGER {name}")
    db.execute("DELETE FROM fleet_built")
    db.execute("ALTER TABLE devices DROP COLUMN attestation_status")
    db.execute("ALTER TABLE devices DROP COLUMN attest_quarantine")
    db.execute("ALTER TABLE devices DROP COLUMN attest_missed_at")
    db.commit()
    db.close()
    st = SQLiteStorage(path)
    cols = {r[1] for r in st._db.execute("PRAGMA table_info(devices)")}
    assert {"attestation_status", "attest_quarantine", "attest_missed_at"} <= cols
    st.close()


async def test_refs_add_list_delete(client, tenant):
    doc = {"model": "rp2040", "micropython": "1.24.1", "build": "v1.24.1",
           "modules": [{"name": "attest.mpy", "size": 10, "sha256": "ab" * 32}]}
    r = await client.post("/v1/attest/refs", json=doc, headers=tenant.headers)
    ref = await r.json()
    assert r.status == 201 and ref["id"].startswith("ref_") and ref["app_files"] is None
    r = await client.post("/v1/attest/refs", json=doc, headers=tenant.headers)
    assert r.status == 409                                           # one per (model, micropython)
    r = await client.post("/v1/attest/refs", json=dict(doc, modules=[{"name": "x", "size": 1, "sha256": "AB" * 32}]),
                          headers=tenant.headers)
    assert r.status == 400
    r = await client.get("/v1/attest/refs?model=rp2040", headers=tenant.headers)
    assert [x["id"] for x in (await r.json())["refs"]] == [ref["id"]]
    assert (await client.delete(f"/v1/attest/refs/{ref['id']}", headers=tenant.headers)).status == 204
    assert (await client.delete(f"/v1/attest/refs/{ref['id']}", headers=tenant.headers)).status == 404


async def test_quarantined_board_updates_and_attests_its_way_out(client, tenant, board, signing, tmp_path):
    """A board quarantined by attestation may still check for updates and get challenges (binary auth
    admits it on those routes only), is challenged at once though its last result is fresh, and an
    affirming answer after the update releases it."""
    await publish_release(client, tenant, signing, tmp_path, "1.0.0", 1)
    nonce = (await ota_check(client, board))["attest"]["nonce"]
    _, body = await submit(client, board.evidence(nonce, app=dict(APP, **{"app.py": "patched\n"})))
    assert body["quarantined"] is True
    assert (await client.post("/v1/auth/device/token", json={"auth": board.auth()})).status == 403
    fixed = dict(APP, **{"app.py": "def run():\n    print('sensor v2')\n"})
    await publish_release(client, tenant, signing, tmp_path, "2.0.0", 2, app=fixed)
    answer = await ota_check(client, board)                       # allowed while quarantined
    assert "attest" in answer
    r = await client.post("/v1/attest/challenge", json={"auth": board.auth()})
    assert r.status == 200                                        # and so is asking for a challenge
    _, body = await submit(client, board.evidence((await r.json())["nonce"], app=fixed, version="2.0.0"))
    assert (body["status"], body["quarantined"], body["trust_level"]) == ("affirming", False, 70)
    assert "attest" not in await ota_check(client, board)         # released: the interval applies again
