"""Helpers for the device DTLS tests (imported by name: conftest.py puts this folder on sys.path): run scripts on the MicroPython unix port (esp32 profile),
start real DTLS peers (openssl s_server, gnutls-serv, coap-server-openssl) on free ports, and a
lossy UDP proxy written in CPython."""

import socket
import subprocess
import threading
import time
from pathlib import Path

from tools.boards import MPRun as _MPRun

VECTORS = Path(__file__).resolve().parents[2] / "docs" / "vectors"
PSK_TEXT = b"secretPSK"
IDENTITY = b"Client_identity"


def free_udp_port():
    # Two consecutive free ports (libcoap listens on port+1 for DTLS).
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a:
            a.bind(("127.0.0.1", 0))
            p = a.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
                    b.bind(("127.0.0.1", p + 1))
                    return p
            except OSError:
                continue
    raise RuntimeError("no free port pair")


class MPRun(_MPRun):
    """The shared runner (tools/boards.py) with the flash directory at tmp_path itself."""

    def __init__(self, tmp_path):
        super().__init__(tmp_path, flash=tmp_path, timeout=60)
        self.dir = tmp_path


class Peer:
    """A server process whose stdout is collected by a thread; `expect(text)` waits for it."""

    def __init__(self, argv, ready=None, cwd=None):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, cwd=cwd)
        self.out = b""
        self._cv = threading.Condition()
        threading.Thread(target=self._pump, daemon=True).start()
        if ready:
            self.expect(ready)
        else:
            time.sleep(0.3)

    def _pump(self):
        for line in iter(self.p.stdout.readline, b""):
            with self._cv:
                self.out += line
                self._cv.notify_all()

    def expect(self, text, timeout=15):
        if isinstance(text, str):
            text = text.encode()
        with self._cv:
            if not self._cv.wait_for(lambda: text in self.out, timeout):
                raise AssertionError("peer never printed %r; output:\n%s" % (text, self.out.decode(errors="replace")))

    def reply_on(self, text, data, timeout=20):
        """In the background: once `text` shows on stdout, write `data` to stdin (s_server sends it)."""
        def run():
            try:
                self.expect(text, timeout)
                self.write(data)
            except (AssertionError, OSError):
                pass
        threading.Thread(target=run, daemon=True).start()

    def write(self, data):
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def stop(self):
        try:
            self.p.stdin.close()  # s_server exits at EOF on stdin
        except OSError:
            pass
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def openssl_server(port, psk_hex, cipher="PSK-AES128-CCM8", hint=None):
    argv = ["openssl", "s_server", "-dtls1_2", "-accept", "127.0.0.1:%d" % port, "-nocert",
            "-psk", psk_hex, "-cipher", cipher, "-naccept", "1"]
    if hint:
        argv += ["-psk_hint", hint]
    return Peer(argv, ready="ACCEPT")


class LossyProxy:
    """UDP proxy on 127.0.0.1: client <-> proxy <-> server. `edit(direction, n, datagram)` returns
    the list of datagrams to forward for the n-th datagram (0-based) in that direction
    ("up" = client to server, "down" = server to client): [] drops it, two copies duplicate it."""

    def __init__(self, server_port, edit):
        self.server = ("127.0.0.1", server_port)
        self.edit = edit
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.client = None
        self.count = {"up": 0, "down": 0}
        self.log = []  # (direction, n, forwarded copies)
        self._stop = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self._stop:
            try:
                d, addr = self.sock.recvfrom(4096)
            except OSError:
                continue
            if addr == self.server:
                way, dest = "down", self.client
            else:
                self.client = addr
                way, dest = "up", self.server
            if dest is None:
                continue
            n = self.count[way]
            self.count[way] = n + 1
            out = self.edit(way, n, d)
            self.log.append((way, n, len(out)))
            for x in out:
                self.sock.sendto(x, dest)

    def close(self):
        self._stop = True
        self.t.join(2)
        self.sock.close()


def client_script(port, psk=PSK_TEXT, identity=IDENTITY, send=b"ping from device\n", extra="",
                  recv_timeout=5.0, **kw):
    """A device script: connect, send one line, print what comes back, close."""
    args = ", ".join("%s=%r" % kv for kv in sorted(kw.items()))
    return """
        import json
        from janua import dtls_udp, DTLSError
        try:
            ch = dtls_udp.connect("127.0.0.1", %d, %r, %r, %s)
        except DTLSError as e:
            print(json.dumps({"error": str(e)}))
            raise SystemExit
        c = getattr(ch, "client", None)
        print(json.dumps({"open": True, "ems": getattr(c, "ems", None),
                          "hint": c.hint.decode() if c and c.hint else None}))
        ch.send(%r)
        got = ch.recv(%r)
        print(json.dumps({"got": got.decode() if got else got}))
        %s
        ch.close()
    """ % (port, identity, psk, args, send, recv_timeout, extra)
