"""A real mosquitto for tests, on free ports, one per test or fixture.

API (small on purpose):

    from tests.mosquitto import Mosquitto, free_port

    port = free_port()
    mq = Mosquitto(tmp_path / "mq", conf_text=f"listener {port} 127.0.0.1\\nallow_anonymous true\\n")
    mq.start()            # waits until every `listener N` of the config accepts TCP; raises with the log if not
    mq.ports              # the listener ports parsed from the config, in order
    mq.reload()           # SIGHUP (re-reads config, CRL files, ACL files); waits until the broker logged it
    mq.log                # the broker's log so far (str), for assertion messages
    mq.stop()             # SIGTERM, then SIGKILL after 5 s; idempotent
    with Mosquitto(...) as mq: ...   # start() / stop()

`conf_text` is a whole mosquitto.conf; `conf` is a path to one, or to a directory holding `mosquitto.conf`
(what `verifier.mqtt.broker.write_config` / `janua mqtt config --out DIR` write). Relative paths in the config are
resolved from the config's directory (the broker runs there). The runner writes `<workdir>/run.conf`: the config
plus `log_dest stderr`, `log_type all` (when the config has no log_dest) and, when the tests run as root, `user root`
(mosquitto otherwise drops to the `mosquitto` user and cannot read files under tmp_path). Ports are not picked
inside the runner because they must be written into the config first: call `free_port()` (or `free_ports(n)`).

Import it as `tests.mosquitto` (works under `.venv/bin/python -m pytest` from the repo root, which puts the
root on sys.path). Never touches the system broker on 1883. MOSQUITTO env var overrides the binary (default /usr/sbin/mosquitto).
"""

import os
import random
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

BINARY = os.environ.get("MOSQUITTO", "/usr/sbin/mosquitto")
_LISTENER = re.compile(r"^\s*listener\s+(\d+)", re.M)


_LOW, _HIGH = 15000, 32000      # below Linux's ephemeral range (32768-60999): no outgoing connection takes these
_SPARE = 4                      # ports after the block that must be free too (configs use base_port + i)


def _bindable(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_ports(n):
    """n consecutive TCP ports (followed by a few more) that were free on 127.0.0.1 a moment ago. They are
    taken below the ephemeral range, so the kernel does not hand them to some client connection between
    this call and the broker's bind (which happened with ports from bind(0))."""
    rng = random.Random()
    for _ in range(500):
        base = rng.randrange(_LOW, _HIGH - n - _SPARE)
        if all(_bindable(p) for p in range(base, base + n + _SPARE)):
            return list(range(base, base + n))
    raise RuntimeError("no block of free ports found")


def free_port():
    return free_ports(1)[0]


class Mosquitto:
    def __init__(self, workdir, conf_text=None, conf=None):
        if (conf_text is None) == (conf is None):
            raise ValueError("give exactly one of conf_text or conf")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if conf is not None:
            conf = Path(conf)
            if conf.is_dir():
                conf = conf / "mosquitto.conf"
            self.confdir = conf.parent.resolve()
            conf_text = conf.read_text()
        else:
            self.confdir = self.workdir.resolve()
        self.conf_text = conf_text
        self.ports = [int(p) for p in _LISTENER.findall(conf_text)]
        self.proc = None
        self.logfile = self.workdir / "mosquitto.log"
        self._reloads = 0

    def _run_conf(self):
        extra = []
        if not re.search(r"^\s*log_dest\b", self.conf_text, re.M):
            extra += ["log_dest stderr", "log_type all"]
        if os.geteuid() == 0 and not re.search(r"^\s*user\b", self.conf_text, re.M):
            extra.append("user root")
        path = self.workdir / "run.conf"
        path.write_text("\n".join(extra) + "\n" + self.conf_text)
        return path

    @property
    def log(self):
        try:
            return self.logfile.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self, timeout=10.0):
        if self.proc is not None:
            raise RuntimeError("already started")
        conf = self._run_conf()
        out = open(self.logfile, "ab")
        try:
            self.proc = subprocess.Popen([BINARY, "-c", str(conf)], cwd=self.confdir, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            out.close()
        deadline = time.monotonic() + timeout
        pending = list(self.ports)
        while pending:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                raise RuntimeError(f"mosquitto exited with {rc}:\n{self.log}")
            try:
                socket.create_connection(("127.0.0.1", pending[0]), timeout=0.5).close()
                pending.pop(0)
                continue
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mosquitto did not listen on {pending} within {timeout}s:\n{self.log}")
            time.sleep(0.05)
        return self

    def reload(self, timeout=5.0):
        """SIGHUP: mosquitto re-reads its config (CRL, ACL file, certificates) for new connections."""
        if self.proc is None:
            raise RuntimeError("not running")
        before = self.log.count("Reloading config")
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while self.log.count("Reloading config") <= before:
            if time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not log a reload within {timeout}s:\n{self.log}")
            time.sleep(0.02)
        # the log line is written before the files are re-read; give the event loop a beat
        time.sleep(0.1)

    def stop(self):
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
