"""Fleet status (docs/fleet.md): a registry built with known numbers gives literal values; changes made
through the registry's routes, real binary auth over UDP and the maintenance move the aggregates; the
triggers agree with a full recount after a random sequence of writes; the gauges on /metrics."""

import asyncio
import json
import random
import sqlite3

from tests.support import T0
from verifier.appkeys import CORE, STORAGE
from verifier.fleet import routes as fleet_routes
from verifier.fleet.core import health_bucket
from verifier.store import SQLiteStorage

MIN = T0 // 60


def _see(storage, hex_id, at):
    storage._db.execute("INSERT INTO auth_state VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                        "last_authenticated_at = excluded.last_authenticated_at", (bytes.fromhex(hex_id), at, at))


def _build(tenant):
    """7 active, 2 suspended (1 of them compromised), 1 provisioning; versions, locations, scores, seen times."""
    st = tenant.app[STORAGE]
    ids = []
    rows = ([{"metadata": {"firmware_version": "1.2.0", "location": "Berlin"}}] * 4
            + [{"metadata": {"firmware_version": "1.1.0", "location": "Paris"}}] * 3
            + [{"metadata": {"location": "Berlin"}}] * 2)
    for r in rows[:7]:
        ids.append(tenant.provision([r], "active")[0][0])
    for r in rows[7:]:
        ids.append(tenant.provision([r], "suspended")[0][0])
    ids.append(tenant.provision([{"metadata": {}}], "provisioning")[0][0])
    st.update_device(tenant.id, bytes.fromhex(ids[8]), {"compromised": True})
    for hex_id, score in zip(ids, (95, 90, 81, 80, 50, 49, None)):
        st._db.execute("UPDATE devices SET health_score = ? WHERE id = ?", (score, bytes.fromhex(hex_id)))
    st._db.execute("UPDATE devices SET reported_version = '1.3.0' WHERE id = ?", (bytes.fromhex(ids[0]),))
    now = tenant.clock()
    _see(st, ids[0], now - 30)          # online
    _see(st, ids[1], now - 599)         # online (inside 600 s, same minute rule: minute >= (now-600)//60)
    _see(st, ids[2], now - 1800)        # 1 h
    _see(st, ids[3], now - 7200)        # 24 h
    _see(st, ids[4], now - 3 * 86400)   # 7 d
    _see(st, ids[5], now - 30 * 86400)  # older
    return ids


async def test_known_numbers(client, tenant_a, clock):
    _build(tenant_a)
    r = await client.get("/v1/fleet/status", headers=tenant_a.headers)
    assert r.status == 200
    doc = await r.json()
    assert doc["tenant_id"] == tenant_a.id and doc["generated_at"] == T0
    assert doc["totals"] == {"devices": 10}
    assert doc["by_status"] == {"active": 7, "suspended": 2, "provisioning": 1}
    # scores 95 90 81 -> healthy, 80 50 -> degraded, 49 -> unhealthy; the compromised one; 3 never reported
    assert doc["health"] == {"healthy": 3, "degraded": 2, "unhealthy": 1, "compromised": 1, "unknown": 3}
    c = doc["connectivity"]
    assert (c["online"], c["offline"], c["seen_1h"], c["seen_24h"], c["seen_7d"], c["never_seen"]) == (2, 8, 3, 4, 5, 4)
    assert c["online_window_s"] == 600
    assert doc["firmware_versions"] == {"1.3.0": 1, "1.2.0": 3, "1.1.0": 3, "unknown": 3}
    assert doc["locations"] == {"Berlin": 6, "Paris": 3, "unknown": 1}
    assert doc["performance"] == {"window_s": 3600, "auth_attempts": 0, "auth_failures": 0,
                                  "auth_success_rate": None, "avg_auth_latency_ms": None, "data_rate_bps": 0.0}
    assert doc["alerts"] == {"open": 0}


async def test_admin_of_the_tenant_only(client, tenant_a, tenant_b):
    _build(tenant_a)
    assert (await client.get("/v1/fleet/status")).status == 401
    doc = await (await client.get("/v1/fleet/status", headers=tenant_b.headers)).json()
    assert doc["totals"] == {"devices": 0} and doc["by_status"] == {}


async def test_lifecycle_and_patch_move_counts(client, tenant_a):
    ids = _build(tenant_a)
    h = tenant_a.headers
    assert (await client.post(f"/v1/devices/{ids[0]}/lifecycle", json={"action": "suspend"}, headers=h)).status == 200
    assert (await client.post(f"/v1/devices/{ids[7]}/lifecycle", json={"action": "decommission"}, headers=h)).status == 200
    r = await client.patch(f"/v1/devices/{ids[6]}", json={"metadata": {"firmware_version": "2.0", "location": "Oslo"}},
                           headers=h)
    assert r.status == 200, await r.text()
    doc = await (await client.get("/v1/fleet/status", headers=h)).json()
    assert doc["by_status"] == {"active": 6, "suspended": 2, "provisioning": 1, "decommissioned": 1}
    assert doc["firmware_versions"] == {"1.3.0": 1, "1.2.0": 3, "1.1.0": 2, "unknown": 3, "2.0": 1}
    assert doc["locations"] == {"Berlin": 6, "Paris": 2, "unknown": 1, "Oslo": 1}


async def test_metrics_gauges(client, tenant_a):
    _build(tenant_a)
    text = await (await client.get("/metrics")).text()
    t = tenant_a.id
    assert f'janua_fleet_devices{{tenant="{t}",status="active"}} 7' in text
    assert f'janua_fleet_devices{{tenant="{t}",status="suspended"}} 2' in text
    assert f'janua_fleet_online{{tenant="{t}"}} 2' in text
    assert f'janua_fleet_firmware{{tenant="{t}",version="1.1.0"}} 3' in text
    assert f'janua_fleet_health{{tenant="{t}",bucket="compromised"}} 1' in text
    assert "janua_auth_decisions" in text     # the binauth metrics are still there


async def test_fold_old_buckets(client, tenant_a, clock):
    ids = _build(tenant_a)
    st = tenant_a.app[STORAGE]
    fleet_routes.maintain_once(st, clock())
    rows = st.fleet_seen(tenant_a.id)
    assert rows[0] == (0, 1)                  # the 30-day-old one, folded
    assert len(rows) == 6
    # the folded device authenticates again: its old minute is found in bucket 0
    _see(st, ids[5], clock())
    doc = await (await client.get("/v1/fleet/status", headers=tenant_a.headers)).json()
    assert doc["connectivity"]["online"] == 3 and doc["connectivity"]["never_seen"] == 4
    assert all(m != 0 for m, _ in st.fleet_seen(tenant_a.id))   # taken out of bucket 0, not out of a dead minute


def _recount(db, tenant_id):
    counts = {}
    for status, comp, att, score, rv, meta in db.execute(
            "SELECT status, compromised, attestation_status, health_score, reported_version, metadata FROM devices "
            "WHERE tenant_id = ?", (tenant_id,)):
        m = json.loads(meta)
        fw = rv if rv is not None else (str(m["firmware_version"]) if "firmware_version" in m else "unknown")
        loc = str(m["location"]) if "location" in m else "unknown"
        for dim, key in (("status", status), ("health", health_bucket(comp, att, score)),
                         ("firmware", fw), ("location", loc)):
            counts.setdefault(dim, {})
            counts[dim][key] = counts[dim].get(key, 0) + 1
    seen = {}
    for (at,) in db.execute("SELECT a.last_authenticated_at FROM auth_state a JOIN devices d ON d.id = a.id "
                            "WHERE d.tenant_id = ?", (tenant_id,)):
        seen[at // 60] = seen.get(at // 60, 0) + 1
    return counts, seen


async def test_triggers_match_a_recount(client, tenant_a, clock):
    rng = random.Random(1313)
    st = tenant_a.app[STORAGE]
    db = st._db
    ids = [h for h, _ in tenant_a.provision([{"metadata": {}} for _ in range(40)], "active")]
    for _ in range(600):
        d = bytes.fromhex(rng.choice(ids))
        op = rng.randrange(7)
        if op == 0:
            db.execute("UPDATE devices SET status = ? WHERE id = ?", (rng.choice(("active", "suspended")), d))
        elif op == 1:
            db.execute("UPDATE devices SET health_score = ? WHERE id = ?", (rng.choice((None, 10, 50, 80, 81, 100)), d))
        elif op == 2:
            db.execute("UPDATE devices SET metadata = ? WHERE id = ?", (json.dumps(
                {k: v for k, v in (("firmware_version", rng.choice(("1", "2", 3))),
                                   ("location", rng.choice(("A", "B")))) if rng.random() < 0.7}), d))
        elif op == 3:
            db.execute("UPDATE devices SET attestation_status = ?, compromised = ? WHERE id = ?",
                       (rng.choice(("unknown", "affirming", "contraindicated")), rng.randrange(2), d))
        elif op == 4:
            db.execute("UPDATE devices SET reported_version = ? WHERE id = ?", (rng.choice((None, "9.9")), d))
        elif op == 5:
            _see(st, d.hex(), T0 - rng.randrange(0, 3 * 86400))
        else:
            db.execute("DELETE FROM auth_state WHERE id = ?", (d,))
    counts, seen = _recount(db, tenant_a.id)
    assert st.fleet_counts(tenant_a.id) == counts
    assert dict(st.fleet_seen(tenant_a.id)) == seen


def test_upgrade_builds_aggregates_once(tmp_path):
    path = str(tmp_path / "old.db")
    s = SQLiteStorage(path)
    s._db.execute("INSERT INTO tenants VALUES ('t1', 'one', 0, '{}')")
    s.close()
    # an older file: no fleet tables, no triggers, no health columns, two devices and one auth_state row
    db = sqlite3.connect(path)
    for name in ("fleet_dev_ins", "fleet_dev_del", "fleet_dev_upd", "fleet_seen_ins", "fleet_seen_upd", "fleet_seen_del"):
        db.execute(f"DROP TRIGGER {name}")
    for table in ("fleet_counts", "fleet_seen", "fleet_built", "fleet_fold", "fleet_perf"):
        db.execute(f"DROP TABLE {table}")
    db.execute("ALTER TABLE devices DROP COLUMN health_score")
    db.execute("ALTER TABLE devices DROP COLUMN reported_version")
    for i, meta in ((1, '{"firmware_version": "0.9"}'), (2, '{"location": "Rome"}')):
        db.execute("INSERT INTO devices (id, tenant_id, serial_number, credential_type, sealed_secret, metadata, status, "
                   "provisioned_at, status_changed_at, trust_level, compromised, quarantined, permissions) "
                   "VALUES (?, 't1', ?, 'psk', x'00', ?, 'active', 0, 0, 0, 0, 0, 0)", (bytes([i] * 8), f"s{i}", meta))
    db.execute("INSERT INTO auth_state VALUES (?, 600, 600)", (bytes([1] * 8),))
    db.commit()
    db.close()
    s = SQLiteStorage(path)
    assert s.fleet_counts("t1") == {"status": {"active": 2}, "health": {"unknown": 2},
                                    "firmware": {"0.9": 1, "unknown": 1}, "location": {"unknown": 1, "Rome": 1}}
    assert s.fleet_seen("t1") == [(10, 1)]
    s.close()
    s = SQLiteStorage(path)                   # opened again: not built a second time
    assert s.fleet_counts("t1")["status"] == {"active": 2}
    s.close()


async def test_udp_auth_moves_seen_and_performance(server, tenant, clock):
    devs = [tenant.device() for _ in range(3)]
    bad = tenant.device()
    st = server.app[STORAGE]
    for d in devs:
        reply = await server.send("udp", d.request())
        assert reply[0] == 0
    for _ in range(2):                        # a wrong tag: a failure of a known device
        req = bytearray(bad.request())
        req[-1] ^= 1
        assert (await server.send("udp", bytes(req)))[0] != 0
    fleet_routes.flush(st, server.app[CORE].perf, clock())
    doc = fleet_routes.status(st, tenant.id, clock())
    assert doc["connectivity"]["online"] == 3 and doc["connectivity"]["never_seen"] == 1
    p = doc["performance"]
    assert (p["auth_attempts"], p["auth_failures"], p["auth_success_rate"]) == (5, 2, 0.6)
    assert p["avg_auth_latency_ms"] > 0
    server.app[CORE].perf.add_bytes(tenant.id, 3000, 600)
    fleet_routes.flush(st, server.app[CORE].perf, clock())
    assert fleet_routes.status(st, tenant.id, clock())["performance"]["data_rate_bps"] == 8.0
    clock.advance(3600)                       # an hour later: out of the window, and offline
    doc = fleet_routes.status(st, tenant.id, clock())
    assert doc["performance"]["auth_attempts"] == 0 and doc["connectivity"]["online"] == 0
    assert doc["connectivity"]["seen_24h"] == 3
