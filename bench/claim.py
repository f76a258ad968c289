"""Zero-touch claims (issue #17): verifier.claim.per_s, successful NEW claims a second on one core, beside a bare
aiohttp handler measured on the same harness in the same run (verifier.claim.ref_http_hello_per_s).

How: the verifier (verifier.app.start_server, HTTP only, a fresh SQLite file in WAL mode in bench/work, rate limits
out of the way) runs in a child process pinned to CPU 0 (os.sched_setaffinity), with one tenant and one claim batch
(serial pattern, no hook). The parent builds REQUESTS claim requests with distinct serials and fresh nonces from the
batch secret (untimed). The load generator, another child pinned to CPU 1, is a small asyncio HTTP/1.1 client:
CONNS keep-alive connections, each posting the next pre-built request as soon as the previous answer is in
(closed loop), for SECONDS; it counts the 200 answers (each a new device committed with its claim row, the batch's
count and its audit row, group commit: the claims of one event-loop turn share a transaction; and an answer built:
7 HMACs, one AES-GCM seal). Reported: the median of
ROUNDS rounds, and the reference: the same load generator against a bare aiohttp POST handler answering 200 bytes,
pinned the same way. The registry starts empty and grows by every round's claims (some 20,000 each): the rate falls
as it grows (the devices table's random keys leave the page cache), so the rounds are printed too.
`python -m bench.claim` runs it alone and merges the keys into bench/results.json."""

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

from bench.harness import LOAD_CPU, PY, ROOT, SERVER_CPU, WORK

REQUESTS = 200_000
CONNS = 128
SECONDS = 4.0
ROUNDS = 3


# ------------------------------------------------------------------ the children

async def _serve(db, hello):
    from aiohttp import web
    if hello:
        async def handler(request):
            await request.read()
            return web.Response(body=bytes(200), content_type="application/octet-stream")
        app = web.Application()
        app.router.add_post("/v1/claim", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        print(json.dumps({"port": runner.addresses[0][1]}), flush=True)
    else:
        from verifier.app import start_server
        from verifier.appkeys import SEALER, STORAGE
        from verifier.claims import batches
        from verifier.config import Config
        from verifier.registry import core as registry
        big = 1e12
        cfg = Config(db_path=db, kek=os.urandom(32), http_port=0, udp_port=None, dtls_port=None, notify_tick_s=None,
                     source_capacity=big, source_refill_per_s=big, claim_batch_capacity=big,
                     claim_batch_refill_per_s=big)
        h = await start_server(cfg)
        st, now = h.app[STORAGE], int(time.time())
        tenant = registry.create_tenant(st, "bench", now)["id"]
        batch, secret, _ = batches.create_batch(st, h.app[SEALER], tenant, {
            "name": "bench", "serial_pattern": "B-*", "max_count": 10_000_000,
            "device": {"model_id": "pico-w", "metadata": {"group": "bench"}}}, now, "bench")
        print(json.dumps({"port": h.http_port, "batch_id": batch["id"].hex(), "secret": secret.hex()}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)    # until the parent closes stdin


class _Conn(asyncio.Protocol):
    def __init__(self, gen):
        self.gen, self.buf, self.transport = gen, b"", None

    def connection_made(self, transport):
        self.transport = transport
        self.gen.send(self)

    def data_received(self, data):
        self.buf += data
        while True:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buf[:head_end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            if len(self.buf) < head_end + 4 + length:
                return
            self.gen.done(int(head[9:12]))
            self.buf = self.buf[head_end + 4 + length:]
            self.gen.send(self)


class _Gen:
    def __init__(self, port, bodies, seconds):
        self.port, self.bodies, self.i = port, bodies, 0
        self.ok = self.other = 0
        self.end = time.monotonic() + seconds
        self.finished = asyncio.get_running_loop().create_future()
        self.open = 0

    def send(self, conn):
        if self.i >= len(self.bodies) or time.monotonic() >= self.end:
            conn.transport.close()
            self.open -= 1
            if self.open == 0 and not self.finished.done():
                self.finished.set_result(time.monotonic())
            return
        body = self.bodies[self.i]
        self.i += 1
        conn.transport.write(b"POST /v1/claim HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def done(self, status):
        if status == 200:
            self.ok += 1
        else:
            self.other += 1


async def _load(port, path, seconds, conns):
    data = open(path, "rb").read()
    bodies, off = [], 0
    while off < len(data):
        n = data[off]
        bodies.append(data[off + 1:off + 1 + n])
        off += 1 + n
    loop = asyncio.get_running_loop()
    gen = _Gen(port, bodies, seconds)
    gen.open = conns
    t0 = time.monotonic()
    for _ in range(conns):
        await loop.create_connection(lambda: _Conn(gen), "127.0.0.1", port)
    t1 = await gen.finished
    print(json.dumps({"ok": gen.ok, "other": gen.other, "sent": gen.i, "seconds": t1 - t0}), flush=True)


def _child(argv):
    os.sched_setaffinity(0, {int(argv[1])})
    if argv[0] == "serve":
        asyncio.run(_serve(argv[2], hello=False))
    elif argv[0] == "hello":
        asyncio.run(_serve(None, hello=True))
    else:
        asyncio.run(_load(int(argv[2]), argv[3], float(argv[4]), int(argv[5])))


# ------------------------------------------------------------------ the parent

def _start(kind, db=None):
    p = subprocess.Popen([PY, "-m", "bench.claim", kind, SERVER_CPU] + ([db] if db else []), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, cwd=ROOT)
    line = p.stdout.readline()
    if not line:
        p.kill()
        raise RuntimeError(f"bench.claim {kind} did not start")
    return p, json.loads(line)


def _stop(p):
    p.stdin.close()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()


def _run_load(port, path, seconds=SECONDS):
    out = subprocess.run([PY, "-m", "bench.claim", "load", LOAD_CPU, str(port), str(path), str(seconds), str(CONNS)],
                         check=True, capture_output=True, text=True, cwd=ROOT, timeout=seconds + 120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(results, say):
    from verifier.claims import core
    WORK.mkdir(parents=True, exist_ok=True)
    db = WORK / "claim.db"
    for p in WORK.glob("claim.db*"):
        p.unlink()
    server, info = _start("serve", str(db))
    hello, hinfo = _start("hello")
    try:
        say(f"claims: building {REQUESTS} claim requests")
        secret, bid = bytes.fromhex(info["secret"]), bytes.fromhex(info["batch_id"])
        path = WORK / "claim.requests"
        with open(path, "wb") as f:
            for i in range(REQUESTS):
                req = core.encode_request(core.claim_key(secret, f"B-{i:07d}"), bid, os.urandom(16), f"B-{i:07d}")
                f.write(bytes((len(req),)) + req)
        hello_path = WORK / "claim.hello"
        with open(hello_path, "wb") as f:
            f.write((bytes((60,)) + bytes(60)) * REQUESTS)
        rates, refs, sent = [], [], 0
        for r in range(ROUNDS):
            # each round claims serials no round claimed before: skip what the earlier rounds sent
            out = _run_load(info["port"], _tail(path, sent))
            sent += out["sent"]
            if out["other"]:
                raise RuntimeError(f"claims: {out['other']} claims were refused: {out}")
            rates.append(out["ok"] / out["seconds"])
            ref = _run_load(hinfo["port"], hello_path)
            refs.append(ref["ok"] / ref["seconds"])
            say(f"claims: round {r + 1}: {rates[-1]:,.0f} claims/s, bare aiohttp {refs[-1]:,.0f}/s")
    finally:
        _stop(server)
        _stop(hello)
    results["verifier.claim.per_s"] = round(statistics.median(rates))
    results["verifier.claim.ref_http_hello_per_s"] = round(statistics.median(refs))
    results["verifier.claim.ratio_to_hello"] = round(statistics.median(a / b for a, b in zip(rates, refs)), 3)


def _tail(path, skip):
    """A requests file without its first `skip` requests."""
    data = open(path, "rb").read()
    off = 0
    for _ in range(skip):
        off += 1 + data[off]
    out = path.with_suffix(".tail")
    out.write_bytes(data[off:])
    return out


if __name__ == "__main__":
    if len(sys.argv) > 1:
        _child(sys.argv[1:])
    else:
        results = {}
        run(results, lambda m: print(f"[bench] {m}", flush=True))
        out = ROOT / "bench" / "results.json"
        merged = json.loads(out.read_text()) if out.exists() else {}
        merged.update(results)
        out.write_text(json.dumps(merged, indent=1, sort_keys=True) + "\n")
        print(json.dumps(results, indent=1, sort_keys=True))
