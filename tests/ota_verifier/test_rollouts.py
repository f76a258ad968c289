"""Rollouts and the device routes: deterministic cohorts with the right phase fractions, phases that
advance by time only while healthy, the automatic halt, device check/report authenticated by binary
auth (a replayed request is refused), download capabilities, and the audit trail."""

import hashlib

import pytest

from tests.ota_verifier.conftest import make_bundle, publish, trust
from verifier.ota import rollout as ota
from verifier.binauth.core import OK, decode_reply

HOUR = 3600


def test_bucket_is_the_documented_hash():
    did, rid = bytes.fromhex("0011223344556677"), "rel_00112233aabbccdd"
    want = int.from_bytes(hashlib.sha256(did + rid.encode()).digest()[:4], "big") % 10000
    assert ota.bucket(did, rid) == want == ota.bucket(did, rid)


@pytest.mark.parametrize("percent", [1, 10, 50, 100])
def test_cohort_fractions_over_10000_devices(percent):
    ids = [hashlib.sha256(b"dev%d" % i).digest()[:8] for i in range(10000)]
    n = sum(ota.eligible(d, "rel_0123456789abcdef", percent) for d in ids)
    tol = {1: 40, 10: 150, 50: 250, 100: 0}[percent]   # ~4 standard deviations
    assert abs(n - percent * 100) <= tol, n
    # nested: a device eligible at a phase stays eligible at the next ones
    for lo, hi in ((1, 10), (10, 50), (50, 100)):
        assert all(ota.eligible(d, "rel_x", hi) for d in ids if ota.eligible(d, "rel_x", lo))


async def _release(client, tenant, signing, tmp_path, version="2.0.0", counter=2, **rollout):
    await trust(client, tenant, signing)
    rel = await publish(client, tenant, make_bundle(tmp_path, signing, version, counter))
    r = await client.post(f"/v1/releases/{rel['id']}/rollout", json=rollout, headers=tenant.headers)
    assert r.status == 201, await r.text()
    return rel, await r.json()


async def _status(client, tenant, ro):
    r = await client.get(f"/v1/rollouts/{ro['id']}", headers=tenant.headers)
    assert r.status == 200
    return await r.json()


async def _report(client, dev, rel, state, reason=None):
    body = {"auth": dev.auth(), "release_id": rel["id"], "state": state}
    if reason:
        body["reason"] = reason
    r = await client.post("/v1/ota/report", json=body)
    assert r.status == 200, await r.text()


async def test_default_phases_from_manifest_and_start(client, tenant_a, signing, tmp_path, clock):
    rel, ro = await _release(client, tenant_a, signing, tmp_path)
    assert ro["state"] == "pending" and ro["eligible_percent"] == 0
    assert [p["percent"] for p in ro["phases"]] == [1, 10, 50, 100]
    assert [p["hours"] for p in ro["phases"]] == [24, 48, 72, 0]
    r = await client.post(f"/v1/rollouts/{ro['id']}/resume", headers=tenant_a.headers)
    s = await r.json()
    assert s["state"] == "active" and s["phase"] == 1 and s["eligible_percent"] == 1
    assert s["next_phase_at"] == clock() + 24 * HOUR
    r = await client.post(f"/v1/releases/{rel['id']}/rollout", json={}, headers=tenant_a.headers)
    assert r.status == 409                          # one rollout per release


async def test_phase_advances_by_time_only_when_healthy(client, tenant_a, signing, tmp_path, clock):
    phases = [{"percent": 10, "hours": 1}, {"percent": 50, "hours": 2}, {"percent": 100, "hours": 0}]
    rel, ro = await _release(client, tenant_a, signing, tmp_path, phases=phases, start=True,
                             halt_min_reports=1000)
    clock.advance(HOUR - 1)
    assert (await _status(client, tenant_a, ro))["phase"] == 1
    clock.advance(1)
    s = await _status(client, tenant_a, ro)
    assert s["phase"] == 2 and s["eligible_percent"] == 50
    devs = tenant_a.devices(20)
    for d in devs[:18]:
        await _report(client, d, rel, "confirmed")
    for d in devs[18:]:
        await _report(client, d, rel, "rolled_back", "not confirmed after 3 boots")
    clock.advance(2 * HOUR)
    s = await _status(client, tenant_a, ro)
    assert s["phase"] == 2 and s["failure_rate"] == 0.1 and "not advanced" in s["held"]
    assert s["counts"]["confirmed"] == 18 and s["counts"]["rolled_back"] == 2
    for d in devs[:2]:                               # those two now update and confirm
        await _report(client, d, rel, "confirmed")
    r = await client.post("/v1/ota/report", json={"auth": devs[18].auth(), "release_id": rel["id"],
                                                  "state": "confirmed"})
    assert r.status == 200
    s = await _status(client, tenant_a, ro)
    assert s["failure_rate"] == pytest.approx(1 / 20) and s["phase"] == 2   # 5 % is not below 5 %
    await _report(client, devs[19], rel, "confirmed")
    s = await _status(client, tenant_a, ro)
    assert s["phase"] == 3 and s["eligible_percent"] == 100 and s["held"] is None
    audit = await (await client.get("/v1/audit", headers=tenant_a.headers)).json()
    assert sum(e["action"] == "ota.rollout.advance" for e in audit["entries"]) == 2


async def test_auto_halt_then_resume(client, tenant_a, signing, tmp_path, clock):
    rel, ro = await _release(client, tenant_a, signing, tmp_path, start=True)
    devs = tenant_a.devices(6)
    for d in devs[:4]:
        await _report(client, d, rel, "confirmed")
    await _report(client, devs[4], rel, "failed", "digest mismatch")
    s = await _status(client, tenant_a, ro)
    assert s["state"] == "active" and s["failure_rate"] == 0.2 and s["outcomes"] == 5   # 20 % does not pass 20 %
    await _report(client, devs[5], rel, "rolled_back", "boom")
    s = await _status(client, tenant_a, ro)
    assert s["halted"] and s["state"] == "halted" and s["halt_reason"].startswith("automatic: 2 of 6")
    assert s["counts"] == {"downloading": 0, "verified": 0, "installed": 0, "confirmed": 4,
                           "rolled_back": 1, "failed": 1}
    r = await client.post(f"/v1/rollouts/{ro['id']}/halt", headers=tenant_a.headers)
    assert r.status == 409
    r = await client.post(f"/v1/rollouts/{ro['id']}/resume", headers=tenant_a.headers)
    assert (await r.json())["state"] == "active"
    r = await client.post(f"/v1/rollouts/{ro['id']}/halt", json={"reason": "field issue"}, headers=tenant_a.headers)
    s = await r.json()
    assert s["halted"] and "field issue" in s["halt_reason"]


async def test_auto_halt_needs_min_reports(client, tenant_a, signing, tmp_path):
    rel, ro = await _release(client, tenant_a, signing, tmp_path, start=True)
    for d in tenant_a.devices(4):
        await _report(client, d, rel, "failed", "x")
    s = await _status(client, tenant_a, ro)
    assert s["failure_rate"] == 1.0 and not s["halted"]


async def test_device_check_download_and_report(client, tenant_a, signing, tmp_path, clock):
    rel, ro = await _release(client, tenant_a, signing, tmp_path, start=True,
                             phases=[{"percent": 100, "hours": 0}])
    dev = tenant_a.devices(1)[0]
    req = dev.auth()
    r = await client.post("/v1/ota/check", json={"auth": req, "version": "1.0.0", "counter": 1})
    out = await r.json()
    assert r.status == 200 and decode_reply(dev.key, bytes.fromhex(req), bytes.fromhex(out["auth"]))["status"] == OK
    up = out["update"]
    assert up["release_id"] == rel["id"] and up["version"] == "2.0.0" and up["rollout_id"] == ro["id"]
    m = await (await client.get(up["manifest_url"])).read()
    sig = await (await client.get(up["sig_url"])).read()
    assert m == (tmp_path / "bundle-2.0.0-2" / "manifest.json").read_bytes()
    assert sig == (tmp_path / "bundle-2.0.0-2" / "manifest.sig").read_bytes()
    f = await client.get(up["files_url"].replace("{path}", "lib/util.py"))
    assert f.status == 200 and await f.read() == (tmp_path / "bundle-2.0.0-2" / "files" / "lib" / "util.py").read_bytes()
    # the capability is bound to the release, the device and its expiry
    bad = up["files_url"].replace("{path}", "lib/util.py")
    for url in (bad[:-1] + ("0" if bad[-1] != "0" else "1"), bad.split("?")[0],
                up["files_url"].replace("{path}", "nope.py"), bad.replace(rel["id"], "rel_0000000000000000")):
        assert (await client.get(url)).status == 404, url
    await _report(client, dev, rel, "downloading")
    await _report(client, dev, rel, "installed")
    await _report(client, dev, rel, "confirmed")
    r = await client.post("/v1/ota/check", json={"auth": dev.auth(), "version": "2.0.0", "counter": 2})
    assert (await r.json())["update"] is None
    clock.advance(ota.DOWNLOAD_TTL_S + 1)
    assert (await client.get(up["manifest_url"])).status == 404          # expired
    audit = await (await client.get(f"/v1/audit?device_id={dev.hex}", headers=tenant_a.headers)).json()
    assert [e["result"] for e in audit["entries"] if e["action"] == "ota.report"] == [
        "confirmed", "installed", "downloading"]


async def test_replayed_check_refused(client, tenant_a, signing, tmp_path):
    await _release(client, tenant_a, signing, tmp_path, start=True, phases=[{"percent": 100, "hours": 0}])
    dev = tenant_a.devices(1)[0]
    req = dev.auth()
    r = await client.post("/v1/ota/check", json={"auth": req})
    assert r.status == 200 and (await r.json())["update"] is not None
    r = await client.post("/v1/ota/check", json={"auth": req})
    out = await r.json()
    assert r.status == 409 and out["error"] == "unauthenticated" and out["message"] == "replay"
    assert "update" not in out
    r = await client.post("/v1/ota/report", json={"auth": req, "version": "2.0.0", "state": "confirmed"})
    assert r.status == 409


@pytest.mark.parametrize("body", [{"auth": "00" * 20}, {"auth": "zz"}, {}, {"auth": "00" * 19}])
async def test_check_without_valid_auth_refused(client, tenant_a, body):
    r = await client.post("/v1/ota/check", json=body)
    assert r.status in (400, 401)


async def test_foreign_and_ineligible_devices_get_nothing(client, tenant_a, tenant_b, signing, tmp_path):
    rel, ro = await _release(client, tenant_a, signing, tmp_path, start=True)   # phase 1: 1 %
    other = tenant_b.devices(1)[0]
    r = await client.post("/v1/ota/check", json={"auth": other.auth()})
    assert (await r.json())["update"] is None
    r = await client.post("/v1/ota/report", json={"auth": other.auth(), "release_id": rel["id"], "state": "failed"})
    assert r.status == 404
    devs = tenant_a.devices(40)
    offered = []
    for d in devs:
        r = await client.post("/v1/ota/check", json={"auth": d.auth()})
        offered.append((await r.json())["update"] is not None)
    assert offered == [ota.eligible(d.id, rel["id"], 1) for d in devs]


async def test_rolled_back_device_not_offered_again(client, tenant_a, signing, tmp_path):
    rel, ro = await _release(client, tenant_a, signing, tmp_path, start=True, phases=[{"percent": 100}])
    dev = tenant_a.devices(1)[0]
    await _report(client, dev, rel, "rolled_back", "not confirmed after 3 boots")
    r = await client.post("/v1/ota/check", json={"auth": dev.auth(), "version": "1.0.0"})
    assert (await r.json())["update"] is None


async def test_halted_rollout_offers_nothing(client, tenant_a, signing, tmp_path):
    rel, ro = await _release(client, tenant_a, signing, tmp_path, start=True, phases=[{"percent": 100}])
    await client.post(f"/v1/rollouts/{ro['id']}/halt", headers=tenant_a.headers)
    dev = tenant_a.devices(1)[0]
    r = await client.post("/v1/ota/check", json={"auth": dev.auth()})
    assert (await r.json())["update"] is None


# the rules across phases are 409 (no schema states them), the rest 400 (tests/ota_verifier/test_rollout_bodies.py)
@pytest.mark.parametrize("doc, status", [({"phases": [{"percent": 50}]}, 409),
                                         ({"phases": [{"percent": 10}, {"percent": 5}]}, 409),
                                         ({"halt_threshold": 2}, 400), ({"bogus": 1}, 400), ({"phases": []}, 400)])
async def test_bad_rollout_requests(client, tenant_a, signing, tmp_path, doc, status):
    await trust(client, tenant_a, signing)
    rel = await publish(client, tenant_a, make_bundle(tmp_path, signing, "2.0.0", 2))
    r = await client.post(f"/v1/releases/{rel['id']}/rollout", json=doc, headers=tenant_a.headers)
    assert r.status == status


async def test_releases_and_rollouts_of_one_second_are_listed_last_made_first(client, tenant_a, signing, tmp_path):
    # the clock does not move: every row has the same `created`, so only the order they were made in tells them apart
    await trust(client, tenant_a, signing)
    rels = [await publish(client, tenant_a, make_bundle(tmp_path / v, signing, v, c))
            for v, c in (("2.0.0", 2), ("2.0.1", 3), ("2.0.2", 4))]
    lst = (await (await client.get("/v1/releases", headers=tenant_a.headers)).json())["releases"]
    assert [x["version"] for x in lst] == ["2.0.2", "2.0.1", "2.0.0"]
    ros = {}
    for i in (1, 2, 0):
        r = await client.post(f"/v1/releases/{rels[i]['id']}/rollout", json={}, headers=tenant_a.headers)
        assert r.status == 201
        ros[(await r.json())["id"]] = rels[i]["version"]
    lst = (await (await client.get("/v1/rollouts", headers=tenant_a.headers)).json())["rollouts"]
    assert [ros[x["id"]] for x in lst] == ["2.0.0", "2.0.2", "2.0.1"]
