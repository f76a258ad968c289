"""Issue #10, "unbounded growth from unauthenticated traffic": refusals of unauthenticated requests are
counted and summarised (verifier/registry/audit.py), the audit trail expires by age and by row count, and
GET /v1/audit pages with a cursor. The flood test sends 100,000 real datagrams to the UDP endpoint."""

import asyncio
import base64
import os
import re
import socket
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from tests.support import KEK, T0, app_storage
from tests.verifier.conftest import Tenant
from verifier.app import start_server
from verifier.appkeys import CORE, STORAGE
from verifier.registry.audit import RefusalSummary, prune
from verifier.config import Config

DAY = 86400


def db_bytes(path):
    """File + WAL of a closed database after a full checkpoint."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    wal = Path(str(path) + "-wal")
    return Path(path).stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def metric_sum(text, name, **labels):
    total = 0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


# -- the bounded flood, on real sockets --------------------------------------------------------------

N_FLOOD = 100_000
N_SOURCES = 200
CHUNK = 128        # datagrams in flight at once: they fit a default 208 KiB receive buffer (none is lost)


def junk(i, device, rand):
    """Four kinds in turn: short (no reply), a 20-byte request of an unknown id, a forged tag for a known
    device, a datagram of a wrong length of 13 to 30 bytes (answered MALFORMED; 31 to 156 bytes would be a
    request with a health report, docs/health.md 2.1, decided on its first 20 bytes)."""
    kind = i % 4
    if kind == 0:
        return rand(1 + i % 12)
    if kind == 1:
        return rand(20)
    if kind == 2:
        return device.id + (T0 + i).to_bytes(4, "big") + rand(8)
    n = 13 + i % 17
    return rand(n + (n >= 20))               # 13 to 19 or 21 to 30 bytes


@pytest.mark.sqlite_only   # measures the growth of the SQLite file and its WAL
async def test_100k_junk_datagrams_never_grow_the_database_past_1mb(tmp_path, clock):
    path = tmp_path / "janua.db"
    cfg = Config(db_path=str(path), kek=KEK, clock=clock, http_port=0, udp_port=0, dtls_port=None)
    handle = await start_server(cfg)
    socks = []
    try:
        tenant = Tenant(handle.app, "acme", clock)
        device = tenant.device()
        handle.storage._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        before = path.stat().st_size + Path(str(path) + "-wal").stat().st_size
        for n in range(N_SOURCES):                  # many source addresses: 127.1.x.y all reach loopback
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((f"127.1.{n // 250}.{1 + n % 250}", 0))
            s.setblocking(False)
            socks.append(s)
        counts = handle.core.counts
        target = ("127.0.0.1", handle.udp_port)
        sent = 0
        while sent < N_FLOOD:
            end = min(sent + CHUNK, N_FLOOD)
            for i in range(sent, end):
                socks[i % N_SOURCES].sendto(junk(i, device, os.urandom), target)
            sent = end
            for _ in range(10_000):                 # let the verifier drain its socket (no real time passes)
                if sum(counts.get("udp", ())) >= sent:
                    break
                await asyncio.sleep(0)
            assert sum(counts.get("udp", ())) == sent, "datagrams were lost: the flood is not measured"
            clock.advance(CHUNK * 0.01)              # 10 ms of fake time per datagram: 1,000 s in all
            for s in socks:                         # throw away the replies
                try:
                    while s.recv(64):
                        pass
                except BlockingIOError:
                    pass
        async with aiohttp.ClientSession() as http, http.get(handle.url + "/metrics") as resp:
            text = await resp.text()
        assert metric_sum(text, "janua_auth_decisions_total", transport="udp") == N_FLOOD
        assert metric_sum(text, "janua_unauthenticated_refusals_total", transport="udp") == N_FLOOD
        by_result = {r: metric_sum(text, "janua_auth_decisions_total", transport="udp", result=r)
                     for r in ("MALFORMED", "UNKNOWN_DEVICE", "SIGNATURE", "LOCKED_OUT", "RATE_LIMITED")}
        assert by_result["MALFORMED"] == 50_000 and by_result["UNKNOWN_DEVICE"] == 25_000
        assert sum(by_result.values()) == N_FLOOD      # the forged tags: SIGNATURE, LOCKED_OUT, RATE_LIMITED
    finally:
        for s in socks:
            s.close()
        await handle.close()                        # writes the summaries still open
    growth = db_bytes(path) - before
    print(f"\n100,000 junk datagrams: database grew by {growth} bytes (file + WAL after a checkpoint)")
    assert growth < 1_000_000
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT kind, result, reason FROM audit WHERE action = 'binauth'").fetchall()
    assert {k for k, _, _ in rows} == {"summary"}
    assert len(rows) < 200                          # a few keys x 17 intervals of 60 s
    assert sum(int(re.match(r"(\d+) refused", reason).group(1)) for _, _, reason in rows) == N_FLOOD


# -- the summaries, sans-IO --------------------------------------------------------------------------

def test_refusal_flood_makes_at_most_one_row_per_key_per_interval():
    s = RefusalSummary(interval_s=60)
    for i in range(1000):
        s.note(T0 + i * 0.059, None, None, "binauth", "udp", (f"10.0.{i % 7}.1", 4000 + i), "MALFORMED", f"length {i}")
    assert s.due(T0 + 59) == []
    rows = s.due(T0 + 60)
    assert rows == [(T0 + 58, None, "summary", None, None, "binauth", "udp", "10.0.0.1:4000", "MALFORMED",
                     f"1000 refused from 7 source host(s) in [{T0}, {T0 + 58}]; last reason: length 999")]
    assert s.due(T0 + 10_000) == [] and s.open_windows == 0
    assert s.counts == {("udp", "MALFORMED"): 1000}


def test_refusal_summary_memory_stays_bounded_under_made_up_keys_and_sources():
    s = RefusalSummary()
    for i in range(30_000):               # 30,000 made-up device ids, 30,000 made-up sources
        s.note(T0, "t1", f"{i:016x}", "binauth", "udp", (f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}", 1), "SIGNATURE", "x")
    assert s.open_windows == 1001         # 1,000 windows, then one tenant-wide window for the rest
    fold = [r for r in s.drain() if r[3] is None]
    assert len(fold) == 1 and fold[0][9].startswith("29000 refused from 1024+ source host(s)")


def test_refusal_summary_remembers_at_most_100k_source_hosts_in_all():
    s = RefusalSummary()
    for d in range(200):                 # 200 devices, each attacked from 1,000 (spoofed) hosts
        for h in range(1000):
            s.note(T0, "t1", f"{d:016x}", "binauth", "udp", (f"10.{d}.{h >> 8}.{h & 255}", 1), "SIGNATURE", "x")
    assert s.hosts_held == 100_000
    rows = s.drain()
    assert s.hosts_held == 0 and len(rows) == 200
    assert rows[0][9].startswith("1000 refused from 1000 source host(s)")
    assert rows[-1][9].startswith("1000 refused from 0+ source host(s)")


async def test_forged_tags_against_a_known_device_are_summarised_on_its_own_trail(client, clock):
    core = client.app[CORE]
    tenant = Tenant(client.app, "acme", clock)
    a, b = tenant.device(), tenant.device()
    for n in range(3):
        core.handle(a.id + (T0 + n).to_bytes(4, "big") + bytes(8), (f"192.0.2.{n}", 5000), clock(), "udp")
    core.handle(b.id + T0.to_bytes(4, "big") + bytes(8), ("192.0.2.9", 5000), clock(), "udp")
    rows = [e for e in client.app[STORAGE].list_audit(tenant.id, a.hex) if e["action"] == "binauth"]
    assert rows == []                     # nothing written row by row
    clock.advance(60)
    core.handle(b.request(), ("192.0.2.9", 5000), clock(), "udp")     # any later flush writes due summaries
    r = await client.get("/v1/audit", params={"device_id": a.hex}, headers=tenant.headers)
    (row,) = [e for e in (await r.json())["entries"] if e["action"] == "binauth"]
    assert (row["kind"], row["result"], row["device_id"], row["source"]) == ("summary", "SIGNATURE", a.hex,
                                                                              "192.0.2.0:5000")
    assert row["reason"] == f"3 refused from 3 source host(s) in [{T0}, {T0}]; last reason: tag does not verify"
    r = await client.get("/v1/audit", params={"device_id": b.hex}, headers=tenant.headers)
    assert [(e["kind"], e["result"]) for e in (await r.json())["entries"] if e["action"] == "binauth"] == [
        ("auth", "OK"), ("summary", "SIGNATURE")]


async def test_authenticated_decisions_are_never_folded_into_summaries(client, clock):
    core = client.app[CORE]
    tenant = Tenant(client.app, "acme", clock)
    dev, off = tenant.device(), tenant.device(status="suspended")
    req = dev.request()
    results = [core.handle(x, ("192.0.2.1", 1), clock(), "udp")[1].result
               for x in (req, req, dev.request(ts=T0 + 3600), off.request())]
    assert results == ["OK", "REPLAY", "TIME_SYNC", "NOT_ACTIVE"]
    rows = [(e["kind"], e["result"]) for e in client.app[STORAGE].list_audit(tenant.id)
            if e["action"] == "binauth"]
    assert rows == [("auth", "NOT_ACTIVE"), ("auth", "TIME_SYNC"), ("auth", "REPLAY"), ("auth", "OK")]


async def test_http_basic_guesses_are_summarised_not_written_one_by_one(client, clock):
    tenant = Tenant(client.app, "acme", clock)
    dev = tenant.device()
    for n in range(50):
        cred = base64.b64encode(f"{dev.hex}:guess{n}".encode()).decode()
        r = await client.get("/v1/auth/device/basic", headers={"Authorization": f"Basic {cred}"})
        assert r.status == 401
    rows = [e for e in client.app[STORAGE].list_audit(tenant.id, dev.hex) if e["action"] == "http.basic"]
    assert rows == []
    client.app[STORAGE].add_audit(client.app[CORE].summary.due(clock() + 60))
    rows = sorted((e["kind"], e["result"], e["reason"].split(";")[0].split(" in ")[0])
                  for e in client.app[STORAGE].list_audit(tenant.id, dev.hex) if e["action"] == "http.basic")
    # 5 guesses checked (lockout_failures), then 45 refused by the lockout without a check
    assert rows == [("summary", "locked_out", "45 refused from 1 source host(s)"),
                    ("summary", "refused", "5 refused from 1 source host(s)")]
    r = await client.get("/metrics")
    assert metric_sum(await r.text(), "janua_unauthenticated_refusals_total", transport="http-basic") == 50


async def test_offline_tokens_naming_made_up_devices_share_one_summary(client, clock):
    for _ in range(50):                  # 107 random bytes: a made-up device id at offset 5 each time
        r = await client.post("/v1/auth/device/offline", json={"token": os.urandom(107).hex()})
        assert r.status == 401
    rows = [r for r in client.app[CORE].summary.drain() if r[5] == "offline"]
    assert [(r[1], r[2], r[3]) for r in rows] == [(None, "summary", None)]
    assert rows[0][9].startswith("50 refused from 1 source host(s)")


async def test_open_summaries_are_written_when_the_verifier_stops(tmp_path, clock):
    cfg = Config(db_path=str(tmp_path / "janua.db"), kek=KEK, clock=clock, http_port=0, udp_port=None,
                 dtls_port=None)
    handle = await start_server(cfg)
    handle.core.handle(bytes(20), ("198.51.100.7", 9), clock(), "udp")       # an unknown id
    await handle.close()
    st = app_storage(cfg.db_path)
    try:
        rows = [tuple(r) for r in st._db.execute("SELECT kind, result, source FROM audit WHERE action = 'binauth'")]
    finally:
        st.close()
    assert rows == [("summary", "UNKNOWN_DEVICE", "198.51.100.7:9")]


# -- retention -------------------------------------------------------------------------------------

def rows_at(tenant_id, stamps):
    return [(ts, tenant_id, "auth", None, None, "binauth", "udp", "192.0.2.1:1", "OK", None) for ts in stamps]


def seqs(storage, tenant_id):
    return [r[0] for r in storage._db.execute("SELECT seq FROM audit WHERE tenant_id IS ? ORDER BY seq",
                                              (tenant_id,))]


async def test_audit_rows_older_than_the_tenants_max_age_are_deleted(client, clock):
    st = client.app[STORAGE]
    a, b = Tenant(client.app, "a", clock), Tenant(client.app, "b", clock)
    r = await client.patch("/v1/tenant", json={"policy": {"audit_max_age_days": 30}}, headers=a.headers)
    assert r.status == 200 and (await r.json())["policy"]["audit_max_age_days"] == 30
    st._db.execute("DELETE FROM audit")
    now = T0 + 100 * DAY
    st.add_audit(rows_at(a.id, [now - 31 * DAY] * 4500 + [now - 29 * DAY] * 3))     # more than 2 batches
    st.add_audit(rows_at(b.id, [now - 31 * DAY] * 2))                           # b keeps the 90-day default
    st.add_audit(rows_at(None, [now - 91 * DAY, now - 89 * DAY]))
    assert await prune(st, now, 90 * DAY, 100_000) == 4501
    assert [r[0] for r in st._db.execute("SELECT ts FROM audit WHERE tenant_id = ?", (a.id,))] == [now - 29 * DAY] * 3
    assert len(seqs(st, b.id)) == 2 and len(seqs(st, None)) == 1


async def test_pruning_by_age_never_deletes_a_young_row_written_before_old_ones(client, clock):
    st = client.app[STORAGE]
    a = Tenant(client.app, "a", clock)
    st._db.execute("DELETE FROM audit")
    now = T0 + 200 * DAY
    st.add_audit(rows_at(a.id, [now - 100 * DAY, now - 100 * DAY, now - DAY, now - 100 * DAY]))
    first = seqs(st, a.id)
    await prune(st, now, 90 * DAY, 100_000)
    assert seqs(st, a.id) == first[2:]


async def test_audit_rows_past_the_tenants_max_rows_go_oldest_first(client, clock):
    st = client.app[STORAGE]
    a, b = Tenant(client.app, "a", clock), Tenant(client.app, "b", clock)
    r = await client.patch("/v1/tenant", json={"policy": {"audit_max_rows": 1000}}, headers=a.headers)
    assert r.status == 200
    st._db.execute("DELETE FROM audit")
    for n in range(25):                          # interleaved with b's rows, as in a shared verifier
        st.add_audit(rows_at(a.id, [T0] * 100) + rows_at(b.id, [T0] * 10) + rows_at(None, [T0] * 50))
    all_a = seqs(st, a.id)
    assert await prune(st, T0, 90 * DAY, 1000) == 1500 + 250
    assert seqs(st, a.id) == all_a[-1000:]
    assert len(seqs(st, b.id)) == 250 and len(seqs(st, None)) == 1000


@pytest.mark.parametrize("policy", [{"audit_max_rows": 999}, {"audit_max_rows": "1000"},
                                    {"audit_max_age_days": 0}, {"audit_max_age_days": 3651},
                                    {"audit_max_age_days": True}])
async def test_audit_retention_outside_its_range_is_refused(client, clock, policy):
    a = Tenant(client.app, "a", clock)
    r = await client.patch("/v1/tenant", json={"policy": policy}, headers=a.headers)
    assert r.status == 400


async def test_the_verifier_prunes_expired_rows_by_itself(tmp_path, clock):
    path = str(tmp_path / "janua.db")
    st = app_storage(path)
    st.add_audit(rows_at(None, [T0] * 10 + [T0 + 99 * DAY]))
    st.close()
    clock.advance(100 * DAY)
    handle = await start_server(Config(db_path=path, kek=KEK, clock=clock, http_port=0, udp_port=None,
                                       dtls_port=None))
    try:
        for _ in range(1000):                        # its background task prunes once at start
            if len(seqs(handle.storage, None)) == 1:
                break
            await asyncio.sleep(0)
        assert [r[0] for r in handle.storage._db.execute("SELECT ts FROM audit")] == [T0 + 99 * DAY]
    finally:
        await handle.close()


# -- the cursor --------------------------------------------------------------------------------------

async def test_audit_is_readable_past_1000_entries_with_the_cursor(client, clock):
    st = client.app[STORAGE]
    a = Tenant(client.app, "a", clock)
    st._db.execute("DELETE FROM audit")
    st.add_audit(rows_at(a.id, [T0] * 2500))
    seen, params = [], {"limit": "1000"}
    pages = []
    for _ in range(10):
        r = await client.get("/v1/audit", params=params, headers=a.headers)
        body = await r.json()
        pages.append(len(body["entries"]))
        seen += [e["seq"] for e in body["entries"]]
        if body["next_cursor"] is None:
            break
        params = {"limit": "1000", "cursor": body["next_cursor"]}
    assert pages == [1000, 1000, 500]
    assert seen == sorted(seqs(st, a.id), reverse=True) and len(set(seen)) == 2500


@pytest.mark.parametrize("cursor", ["", "x", "-1", "1.5", "٣", "9" * 19])
async def test_audit_cursor_that_is_not_one_is_refused(client, clock, cursor):
    a = Tenant(client.app, "a", clock)
    r = await client.get("/v1/audit", params={"cursor": cursor}, headers=a.headers)
    assert r.status == 400 and (await r.json())["error"] == "invalid_request"
