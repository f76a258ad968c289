"""Fleet status (issue #13): verifier.fleet.status_ms, the fleet status of a tenant with 1,000,000
devices, and verifier.fleet.status_ms_1k, of a tenant with 1,000, both on one SQLite file (WAL).

How: the devices and their auth_state rows are inserted with INSERT ... SELECT from a recursive CTE
(firmware from 20 versions, location from 30 cities, statuses, health scores, last seen over 10 days)
with the fleet triggers dropped, then the file is reopened: the storage recreates the triggers and
builds the aggregates once, as at an upgrade (verifier.fleet.upgrade_build_s). Timed: the status
document (verifier.fleet.routes.status: the aggregate reads and the document), median of ROUNDS.
Also: the cost the auth_state trigger adds to an UPDATE of last_authenticated_at inside the same minute
(the binary-auth hot path) and across a minute, in microseconds per row, with and without the trigger.
"""

import statistics
import time

from bench.harness import WORK

ROUNDS = 21
UPD = 100_000
TRIGGERS = ("fleet_dev_ins", "fleet_dev_del", "fleet_dev_upd", "fleet_seen_ins", "fleet_seen_upd", "fleet_seen_del")


def _fill(db, tenant, n, first, now):
    db.execute(f"""
        WITH RECURSIVE c(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM c WHERE i < {first + n - 1})
        INSERT INTO devices (id, tenant_id, serial_number, credential_type, sealed_secret, metadata, status,
                             provisioned_at, status_changed_at, trust_level, compromised, quarantined, permissions,
                             health_score)
        SELECT CAST(printf('%016x', i) AS BLOB), '{tenant}', 'SN' || i, 'psk', x'00',
               json_object('firmware_version', '1.' || (i % 20), 'location', 'city' || (i % 30)),
               CASE i % 10 WHEN 0 THEN 'suspended' WHEN 1 THEN 'provisioning' ELSE 'active' END,
               0, 0, 0, i % 97 = 0, 0, 0, CASE WHEN i % 5 = 0 THEN NULL ELSE i % 101 END FROM c""")
    db.execute(f"""
        WITH RECURSIVE c(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM c WHERE i < {first + n - 1})
        INSERT INTO auth_state SELECT CAST(printf('%016x', i) AS BLOB), {now} - (i * 7919) % 864000,
               {now} - (i * 7919) % 864000 FROM c WHERE i % 3 != 0""")


def _time_status(storage, tenant, now):
    from verifier.fleet import routes
    routes.status(storage, tenant, now)               # warm
    ms = []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        routes.status(storage, tenant, now)
        ms.append((time.perf_counter() - t) * 1000)
    return statistics.median(ms)


def _update_cost(db, now, same_minute):
    ids = [r[0] for r in db.execute("SELECT id FROM auth_state LIMIT ?", (UPD,))]
    base = now - now % 60
    db.execute("BEGIN")                               # every row already in this minute (untimed)
    db.executemany("UPDATE auth_state SET last_authenticated_at = ? WHERE id = ?", [(base, i) for i in ids])
    db.execute("COMMIT")
    t = time.perf_counter()
    db.execute("BEGIN")
    for k, i in enumerate(ids):
        v = base + (k % 30 if same_minute else 60 * (1 + k % 5))
        db.execute("UPDATE auth_state SET last_ts = ?, last_authenticated_at = ? WHERE id = ?", (v, v, i))
    db.execute("ROLLBACK")
    return (time.perf_counter() - t) * 1e6 / len(ids)


def run(results, say):
    from verifier.store import SQLiteStorage
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "fleet_status.db"
    for p in WORK.glob("fleet_status.db*"):
        p.unlink()
    now = 1_800_000_000
    s = SQLiteStorage(str(path))
    db = s._db
    for name in TRIGGERS:
        db.execute(f"DROP TRIGGER {name}")
    db.execute("BEGIN")
    db.execute("INSERT INTO tenants VALUES ('big', 'big', 0, '{}'), ('small', 'small', 0, '{}')")
    t = time.perf_counter()
    _fill(db, "big", 1_000_000, 1, now)
    _fill(db, "small", 1000, 2_000_001, now)
    db.execute("DELETE FROM fleet_built")
    db.execute("COMMIT")
    fill_s = time.perf_counter() - t
    s.close()
    t = time.perf_counter()
    s = SQLiteStorage(str(path))                      # triggers back, aggregates built once
    build_s = time.perf_counter() - t
    results["verifier.fleet.status_ms"] = round(_time_status(s, "big", now), 3)
    results["verifier.fleet.status_ms_1k"] = round(_time_status(s, "small", now), 3)
    results["verifier.fleet.upgrade_build_s"] = round(build_s, 2)
    with_same = _update_cost(s._db, now, True)
    with_cross = _update_cost(s._db, now, False)
    s._db.execute("DROP TRIGGER fleet_seen_upd")
    without_same = _update_cost(s._db, now, True)
    without_cross = _update_cost(s._db, now, False)
    s.close()
    results["verifier.fleet.auth_state_trigger_us_same_minute"] = round(with_same - without_same, 3)
    results["verifier.fleet.auth_state_trigger_us_new_minute"] = round(with_cross - without_cross, 3)
    say(f"fleet: status {results['verifier.fleet.status_ms']} ms at 1,000,000 devices, "
        f"{results['verifier.fleet.status_ms_1k']} ms at 1,000 (fill {fill_s:.1f} s, aggregate build "
        f"{build_s:.1f} s); auth_state UPDATE {without_same:.2f} -> {with_same:.2f} us same minute, "
        f"{without_cross:.2f} -> {with_cross:.2f} us new minute")


if __name__ == "__main__":
    import json
    out = {}
    run(out, print)
    print(json.dumps(out, indent=1, sort_keys=True))
