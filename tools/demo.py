"""`janua demo`: the main job, end to end, on the embedded defaults.

A verifier (`janua serve --dev`, SQLite) and a virtual board (the MicroPython unix port on a
pseudo-terminal, esp32 profile: its files on an emulated flash chip, LittleFS at /, and sys.platform
"esp32") are started; then, with the same commands a user types: `janua flash` installs the firmware
and the board's own hal (boards/esp32/hal.py) with mpremote, `janua provision --port` registers the device and
writes its credentials onto the board, the board is reset and authenticates over UDP at boot (and
takes a device token and a chain of offline tokens), then over HTTP and over DTLS-lite + CoAP, and `janua console --diag`
shows its status. The verifier's audit trail closes the demo. The web console's URL (docs/console.md) is printed at the
start and the end; `--serve` keeps the verifier running for it afterwards.

`run_demo()` is also what the end-to-end test runs, so the demo cannot rot silently.
"""

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools.errors import CLIError

# `janua serve`'s ready line (verifier/serve.py); it ends with " tls=on" (before any " edge ...") for HTTPS
SERVE_LINE = re.compile(r"janua serve: http=([\d.]+):(\d+) udp=([\d.]+):(\d+)(?: dtls=([\d.]+):(\d+))?")
SERVE_TLS = re.compile(r"^janua serve: http=\S+ udp=\S+ dtls=\S+ tls=on\b")


def configure(p):
    p.add_argument("--board", default="esp32", choices=("esp32", "rp2040", "unix"),
                   help="profile of the virtual board (default esp32)")
    p.add_argument("--workdir", help="keep the registry, keys and the board's flash here "
                                     "(default: a temporary directory, removed afterwards)")
    p.add_argument("--serve", action="store_true",
                   help="after the demo, keep its verifier running for the web console (docs/console.md) "
                        "until Ctrl-C")


def run(args):
    if args.workdir:
        run_demo(Path(args.workdir), args.board, serve=args.serve)
    else:
        with tempfile.TemporaryDirectory(prefix="janua-demo-") as d:
            run_demo(Path(d), args.board, serve=args.serve)
    return 0


def _janua(*argv, timeout=120, check=True):
    """Run the janua CLI as a user would (a subprocess), returning its CompletedProcess."""
    cmd = [sys.executable, "-m", "janua_host", *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          cwd=Path(__file__).resolve().parent.parent)
    if check and proc.returncode != 0:
        raise CLIError(f"`janua {' '.join(argv)}` failed: {(proc.stderr or proc.stdout).strip()}")
    return proc


class Verifier:
    """`janua serve --dev` as a subprocess on free ports (or the ports given, to restart on the same
    ones); `extra` arguments are appended (e.g. --edge --upstream URL for an edge verifier)."""

    def __init__(self, workdir, listen_host="127.0.0.1", db_name="janua.db", http_port=0, udp_port=0,
                 extra=()):
        self.db = workdir / db_name
        cmd = [sys.executable, "-m", "janua_host", "serve", "--dev", "--db", str(self.db),
               "--http-host", listen_host, "--udp-host", listen_host,
               "--http-port", str(http_port), "--udp-port", str(udp_port), "--dtls-host", listen_host,
               "--dtls-port", "0", "--log-level", "WARNING", *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     cwd=Path(__file__).resolve().parent.parent)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = SERVE_LINE.search(line)
            if m:
                self.http_port, self.udp_port = int(m.group(2)), int(m.group(4))
                self.dtls_port = int(m.group(6)) if m.group(6) else None
                self.tls = bool(SERVE_TLS.search(line))
                c = re.search(r" coap-claim=\S+:(\d+)", line)
                self.coap_claim_port = int(c.group(1)) if c else None
                self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.http_port}"
                self.token_file = Path(str(self.db) + ".token")
                return
        self.stop()
        raise CLIError("the verifier did not start: " + (self.proc.stderr.read() or "")[-2000:])

    def api(self, method, path, body=None):
        from tools.api import API
        return API(self.url, token_file=str(self.token_file)).call(method, path, body)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def reset_and_read(port, want=b"janua: ", timeout=30):
    """Soft-reset the board over its serial port (Ctrl-C, Ctrl-D at the REPL, as on a real board)
    and return the first line main.py prints that starts with `want`."""
    import serial
    with serial.Serial(port, 115200, timeout=0.2) as s:
        s.write(b"\r\x03\x03\x02")   # interrupt anything, leave raw REPL: friendly REPL
        time.sleep(0.2)
        s.reset_input_buffer()
        s.write(b"\x04")             # soft reset: the board reboots and runs main.py
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            buf += s.read(256)
            lines = buf.split(b"\n")
            for line in lines[:-1]:          # complete lines only
                line = line.strip()
                if line.startswith(want):
                    return line.decode(errors="replace")
        raise CLIError(f"the board did not report within {timeout}s; it printed: {buf[-500:]!r}")


SWITCH_AND_AUTH = (
    "from janua.store import Store\n"
    "from janua.app import run\n"
    "s = Store(); c = s.load_config(); c['transport'] = %r; s.save_config(c)\n"
    "print(run())\n"
)


def console_line(verifier):
    """Where the web console of the demo's verifier is, and the token to sign in with (docs/console.md)."""
    return (f"== web console: {verifier.url}/console/ (sign in with the admin token in {verifier.token_file}: "
            f"`cat {verifier.token_file}`)")


def run_demo(workdir, board="esp32", say=print, serve=False):
    from tools import mpremote_util
    from tools.boards import vboard_wifi_args
    from tools.vboard import VirtualBoard
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    out = {}
    say(f"== janua demo in {workdir}")
    verifier = Verifier(workdir)
    vb = None
    try:
        say(f"== verifier: {verifier.url} (HTTP), udp://127.0.0.1:{verifier.udp_port} (binary auth), "
            f"registry {verifier.db}")
        say(console_line(verifier))
        vb = VirtualBoard(board=board, flash_dir=workdir / "flash")
        port = vb.start()
        where = vb.flash.image if vb.flash is not None else vb.flash_dir
        say(f"== virtual board ({board}) on {port}, flash {where}")
        out["root"] = vb.root   # the board's files (a FlashPath on its LittleFS; for unix, the flash directory)
        say("$ janua flash --port " + port)
        say(_janua("flash", "--port", port, "--board", board).stdout.rstrip())
        say(f"$ janua provision --serial DEMO-0001 --port {port}")
        p = _janua("provision", "--serial", "DEMO-0001", "--port", port, "--board", board,
                   "--server", verifier.url, "--token-file", str(verifier.token_file),
                   "--udp-port", str(verifier.udp_port), "--dtls-port", str(verifier.dtls_port),
                   "--transport", "udp", "--tokens", *vboard_wifi_args(board))
        say(p.stdout.rstrip())
        m = re.search(r"provisioned device ([0-9a-f]{16})", p.stdout)
        out["device_id"] = device_id = m.group(1) if m else None
        say("== reset the board: main.py authenticates over UDP at boot, then takes a device token (ES256 JWT)\n"
            "   and a chain of offline tokens for when the verifier is unreachable")
        out["udp_line"] = reset_and_read(port)
        say("   board: " + out["udp_line"])
        say("== and once more over HTTP")
        out["http_line"] = mpremote_util.exec_(port, SWITCH_AND_AUTH % "http").strip().splitlines()[-1]
        say("   board: " + out["http_line"])
        say("== and over DTLS-lite (DTLS 1.2 PSK, AES-128-CCM-8, pure MicroPython) with CoAP POST /auth")
        out["dtls_line"] = mpremote_util.exec_(port, SWITCH_AND_AUTH % "dtls").strip().splitlines()[-1]
        say("   board: " + out["dtls_line"])
        say(f"$ janua console --port {port} --diag")
        out["diag"] = _janua("console", "--port", port, "--diag").stdout
        say(out["diag"].rstrip())
        audit = verifier.api("GET", f"/v1/audit?device_id={device_id}&limit=20") if device_id else {}
        out["audit"] = entries = audit.get("entries", audit.get("items", [])) if isinstance(audit, dict) else audit
        say("== the verifier's audit trail for the device (newest first):")
        for e in entries[:10]:
            say("   " + json.dumps({k: e.get(k) for k in ("at", "action", "transport", "result", "reason")
                                    if k in e}))
        dev = verifier.api("GET", f"/v1/devices/{device_id}") if device_id else {}
        out["device"] = dev
        say(f"== device {device_id}: status={dev.get('status')} "
            f"last_authenticated_at={dev.get('last_authenticated_at')}")
        h = verifier.api("GET", f"/v1/devices/{device_id}/health") if device_id else {}
        out["health"] = h
        if h.get("via"):
            res = h.get("resources") or {}
            say(f"== its latest health report (each boot's first authentication carries one, docs/health.md; "
                f"this one came {h.get('via')}): score {h.get('score')} "
                f"({h.get('bucket')}), heap {res.get('heap_free')} B free (lowest {res.get('heap_min')} B), "
                f"boot {(h.get('operational') or {}).get('boot_count')}, "
                f"{len(h.get('recommendations') or [])} recommendation(s)")
        ok = all("authenticated" in out[k] for k in ("udp_line", "http_line", "dtls_line"))
        say("== demo " + ("passed: the board authenticated over UDP, HTTP and DTLS" if ok else "FAILED"))
        if not ok:
            raise CLIError("the board did not authenticate; see the lines above")
        say(console_line(verifier))
        if serve:
            say("== the verifier keeps running for the console (--serve): Ctrl-C stops it")
            try:
                verifier.proc.wait()
            except KeyboardInterrupt:
                pass
        else:
            say("   (the demo's verifier stops now: `janua demo --serve` keeps it running for the console)")
        return out
    finally:
        if vb is not None:
            vb.stop()
        verifier.stop()
