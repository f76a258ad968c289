"""Process plumbing for the benchmarks: pinned servers, the C load generator, wrk."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work"
PY = sys.executable
SERVER_CPU = "0"
LOAD_CPU = "1" if (os.cpu_count() or 1) > 1 else "0"


def build_loadgen():
    WORK.mkdir(parents=True, exist_ok=True)
    out = WORK / "loadgen"
    src = ROOT / "bench" / "loadgen.c"
    if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(out), str(src)], check=True)
    return out


def build_dtls_loadgen():
    WORK.mkdir(parents=True, exist_ok=True)
    out = WORK / "dtls_loadgen"
    src = ROOT / "bench" / "dtls_loadgen.c"
    if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(out), str(src), "-lssl", "-lcrypto"], check=True)
    return out


def dtls_loadgen(exe, port, identity, psk_hex, clients, seconds):
    argv = ["taskset", "-c", LOAD_CPU, str(exe), "127.0.0.1", str(port), identity, psk_hex, str(clients), str(seconds)]
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=seconds + 30)
    return json.loads(out.stdout)


class Pinned:
    """A server process pinned to SERVER_CPU; waits for `ready_prefix` on its stdout."""

    def __init__(self, argv, ready_prefix, env=None, timeout=30):
        self.proc = subprocess.Popen(["taskset", "-c", SERVER_CPU] + list(argv), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env)
        deadline = time.monotonic() + timeout
        self.lines = []
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if line.startswith(ready_prefix):
                self.ready_line = line.strip()
                return
        self.stop()
        raise RuntimeError("server did not start: " + "".join(self.lines[-20:]))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def loadgen(port, packets, pktlen, mode, param, seconds, any_reply=False):
    exe = build_loadgen()
    argv = ["taskset", "-c", LOAD_CPU, str(exe), "127.0.0.1", str(port), str(packets), str(pktlen),
            mode, str(param), str(seconds)] + (["any"] if any_reply else [])
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=seconds + 30)
    return json.loads(out.stdout)


def udp_peak_and_p99(port, packet_files, pktlen, any_reply, seconds=4.0, window=64):
    """Peak rate (closed loop), then latency at 80% of it (open loop). packet_files: two files."""
    peak = loadgen(port, packet_files[0], pktlen, "closed", window, seconds, any_reply)
    rate = max(1.0, 0.8 * peak["ok_per_s"])
    at80 = loadgen(port, packet_files[1], pktlen, "open", rate, seconds, any_reply)
    return peak, at80, rate


def wrk(url, seconds=4, connections=32, script=None, env=None):
    argv = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", "-c", str(connections), "-d", f"{seconds}s"]
    if script:
        argv += ["-s", str(script)]
    argv.append(url)
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=seconds + 60,
                         env={**os.environ, **(env or {})})
    for line in out.stdout.splitlines():
        if line.startswith("JSON "):
            return json.loads(line[5:])
    raise RuntimeError("wrk printed no summary: " + out.stdout + out.stderr)
