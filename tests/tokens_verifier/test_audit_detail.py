"""Audit rows of device tokens and offline chains at the cloud: `reason` is a bare code (None when
accepted) and the numbers go to `detail`, so a script matches `reason == "replayed"` instead of parsing
"replayed (index 0)" or "exp 1767229200"; and an audit table written before `detail` existed gains it."""

import sqlite3

from verifier.appkeys import STORAGE
from verifier.store import SQLiteStorage

DAY = 86400


def _rows(client, tenant, action):
    return [(e["result"], e["reason"], e["detail"]) for e in client.app[STORAGE].list_audit(tenant.id, limit=100)
            if e["action"] == action and e["kind"] == "auth"]


async def test_token_issue_and_refresh_keep_exp_out_of_the_reason(client, tenant, device, clock):
    exp = int(clock()) + 3600                       # token_ttl_s 3600 (the device fixture obtained one now)
    assert _rows(client, tenant, "token.issue") == [("OK", None, f"exp {exp}")]
    clock.advance(10)
    r = await client.post("/v1/auth/device/refresh", headers=device.bearer)
    assert r.status == 200
    assert _rows(client, tenant, "token.refresh") == [("OK", None, f"exp {exp + 10}")]


async def test_sync_counts_are_in_detail_not_in_the_reason(client, tenant, device):
    await device.sync(client, have=-1)
    assert _rows(client, tenant, "sync") == [("OK", None, "used 0, issued 30")]


async def test_offline_refusal_of_a_decoded_token_carries_its_index_in_detail(client, tenant, device, clock):
    toks = [bytes.fromhex(t) for t in (await device.sync(client, have=-1))["tokens"]]
    clock.advance(2 * DAY + 60)                                          # index 2 is valid now
    for _ in range(2):
        await client.post("/v1/auth/device/offline", json={"token": toks[2].hex()})
    await client.post("/v1/auth/device/offline", json={"token": toks[0].hex()})     # long expired
    assert _rows(client, tenant, "offline") == [("REFUSED", "expired", "index 0"), ("REFUSED", "replayed", "index 2"),
                                                ("OK", None, "index 2")]


OLD_AUDIT = """CREATE TABLE audit (
    seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, tenant_id TEXT, kind TEXT NOT NULL,
    device_id TEXT, actor TEXT, action TEXT NOT NULL, transport TEXT, source TEXT,
    result TEXT NOT NULL, reason TEXT);
INSERT INTO audit (ts, tenant_id, kind, action, result, reason) VALUES (1, 't', 'auth', 'offline', 'OK', 'index 4');
"""


def test_audit_file_of_an_older_release_gains_the_detail_column_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_AUDIT)
    st = SQLiteStorage(str(path))
    try:
        st.add_audit([(2, "t", "auth", None, None, "offline", "offline", "1.2.3.4", "REFUSED", "replayed", "index 4"),
                      (3, "t", "admin", None, "tok", "device.patch", None, None, "ok", "fields: x")])   # no detail
        rows = [(e["ts"], e["reason"], e["detail"]) for e in st.list_audit("t")]
    finally:
        st.close()
    assert rows == [(3, "fields: x", None), (2, "replayed", "index 4"), (1, "index 4", None)]
