"""The web console's page times (issue #16), server side, with 100,000 devices in the tenant.

verifier.console.devices_page_ms: GET /console/devices (the first page of the devices table, default sort and
filters) from `janua serve` pinned to CPU 0, on one SQLite file (WAL) holding 100,000 devices of one tenant; the
bench process signs in once (POST /console/sign-in with an admin token, the session cookie kept) and times the
whole HTTP request on one keep-alive loopback connection: request sent to body read. Median of ROUNDS after WARM
untimed requests. verifier.console.device_page_ms: the same for GET /console/devices/{id} of one device that
authenticated AUTHS times over UDP just before (so its page has its last authentications and audit trail to show).

The registry is made for each run: 99,999 devices go in through the storage's bulk path
(Storage.insert_devices, calls of BATCH rows, one transaction each; the sealed secret a placeholder: no page
unseals it), statuses, firmware versions, groups and last authentication times spread over them (two of three have
an auth_state row, written in one executemany), 300,000 audit rows of their authentications over the last 10 days
(Storage.add_audit, calls of BATCH); the 100,000th, whose page is timed, is provisioned for real
(verifier.registry.provision_bulk).
"""

import http.client
import json
import os
import socket
import statistics
import time
import urllib.parse

from bench.harness import WORK, Pinned

N_DEVICES = 100_000
BATCH = 10_000
ROUNDS = 31
WARM = 5
AUTHS = 5
AUDIT = 300_000
TENANT = "console"


def _registry(db, kek_file, now):
    """Fill `db`: (admin token, [device id hex, master secret hex] of the device whose page is timed)."""
    from verifier import secretfile
    from verifier.registry import core as registry
    from verifier.store import SQLiteStorage
    kek = os.urandom(32)
    secretfile.write_new(kek_file, (kek.hex() + "\n").encode())
    storage = SQLiteStorage(str(db))
    tenant = registry.create_tenant(storage, TENANT, now)
    _, token = registry.issue_token(storage, tenant["id"], now, label="bench")
    statuses = ("active",) * 8 + ("suspended", "provisioning")
    for start in range(0, N_DEVICES - 1, BATCH):           # the last one is the timed device, made below
        rows = []
        for i in range(start, min(N_DEVICES - 1, start + BATCH)):
            meta = {"firmware_version": f"1.{i % 20}.0", "location": f"city{i % 30}", "group": f"g{i % 50}",
                    "capabilities": [], "tags": [f"t{i % 7}"]}
            rows.append((i.to_bytes(8, "big"), tenant["id"], f"SN-{i:07d}", None, "m1", "symmetric", b"\0" * 60,
                         json.dumps(meta), statuses[i % 10], now - 86400, now - 86400, 50, 0, 0, 15, 0,
                         now + 365 * 86400))
        storage.insert_devices(rows)
    for start in range(0, AUDIT, BATCH):                   # auth rows of every device, oldest first
        storage.add_audit([(now - 864000 + k * 864000 // AUDIT, tenant["id"], "auth",
                            (k % (N_DEVICES - 1)).to_bytes(8, "big").hex(), None, "binauth", "udp",
                            f"10.0.{k % 200}.{k % 250}:5685", "OK", None) for k in range(start, start + BATCH)])
    storage.close()
    import sqlite3
    with sqlite3.connect(db) as c:             # bench setup: last authentications over the past 10 days
        c.executemany("INSERT INTO auth_state (id, last_ts, last_authenticated_at) VALUES (?, ?, ?)",
                      ((i.to_bytes(8, "big"), now - (i * 7919) % 864000, now - (i * 7919) % 864000)
                       for i in range(N_DEVICES - 1) if i % 3))
    storage = SQLiteStorage(str(db))
    made = registry.provision_bulk(storage, kek, tenant["id"], [{"serial_number": "BENCH-PAGE-1"}], now)["results"][0]
    storage.close()
    return token, (made["device_id"], made["master_secret"])


def _authenticate(udp_port, device):
    """AUTHS binary auths of the device over UDP: it becomes active, its page has authentications to list."""
    from verifier import keys
    from verifier.binauth.core import OK, decode_reply, encode_request
    did, master = bytes.fromhex(device[0]), bytes.fromhex(device[1])
    key = keys.derive_key(master, keys.LABEL_BINAUTH)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        for k in range(AUTHS):
            req = encode_request(key, did, int(time.time()) + k)
            s.sendto(req, ("127.0.0.1", udp_port))
            if decode_reply(key, req, s.recvfrom(256)[0])["status"] != OK:
                raise RuntimeError("console bench: the page's device did not authenticate")


def _sign_in(conn, token):
    body = urllib.parse.urlencode({"token": token})
    conn.request("POST", "/console/sign-in", body, {"Content-Type": "application/x-www-form-urlencoded"})
    r = conn.getresponse()
    r.read()
    cookie = r.getheader("Set-Cookie") or ""
    if r.status != 303 or not cookie.startswith("janua_console="):
        raise RuntimeError(f"console bench: sign-in answered {r.status} {cookie[:40]!r}")
    return cookie.split(";", 1)[0]


def _time_page(conn, path, cookie):
    def get():
        conn.request("GET", path, headers={"Cookie": cookie})
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"console bench: GET {path} answered {r.status}: {body[:200]!r}")
        return body
    for _ in range(WARM):
        body = get()
    ms = []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        get()
        ms.append((time.perf_counter() - t) * 1000)
    return statistics.median(ms), body


def run(results, say):
    from bench.run import ports_of, serve_argv
    WORK.mkdir(parents=True, exist_ok=True)
    db, kek_file = WORK / "console.db", WORK / "console.kek"
    for p in [*WORK.glob("console.db*"), kek_file]:
        p.unlink(missing_ok=True)
    t = time.perf_counter()
    token, device = _registry(db, kek_file, int(time.time()))
    fill_s = time.perf_counter() - t
    with Pinned(serve_argv(db, kek_file), "janua serve:", timeout=120) as srv:
        hport, uport = ports_of(srv.ready_line)
        _authenticate(uport, device)
        conn = http.client.HTTPConnection("127.0.0.1", hport, timeout=30)
        try:
            cookie = _sign_in(conn, token)
            devices_ms, page = _time_page(conn, "/console/devices", cookie)
            rows = page.count(b"data-device-id=")
            device_ms, _ = _time_page(conn, f"/console/devices/{device[0]}", cookie)
        finally:
            conn.close()
    for p in [*WORK.glob("console.db*"), kek_file]:
        p.unlink(missing_ok=True)
    results["verifier.console.devices_page_ms"] = round(devices_ms, 3)
    results["verifier.console.device_page_ms"] = round(device_ms, 3)
    say(f"console: /console/devices {devices_ms:.2f} ms ({rows} rows of {N_DEVICES:,} devices), device page "
        f"{device_ms:.2f} ms (median of {ROUNDS}, HTTP on loopback; registry filled in {fill_s:.1f} s)")


if __name__ == "__main__":
    out = {}
    run(out, print)
    print(json.dumps(out, indent=1, sort_keys=True))
