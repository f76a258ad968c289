"""Backup and restore against real `janua serve` subprocesses (tools.demo.Verifier,
real time, free ports): devices authenticate over UDP with the tests' binary-auth helper; a backup is
taken while the verifier runs and an HTTP writer keeps provisioning; the backup restored into a new file
serves a new verifier that authenticates the same devices and refuses the replay of a request accepted
before the backup."""

import re
import stat
import threading
import time

from tests.backup.live import OK, REPLAY, janua, provision, udp_auth
from tests.support import AuthDevice
from tools.demo import Verifier


class Writer(threading.Thread):
    """Provisions devices over HTTP, one commit each, until stopped: the verifier is busy writing."""

    def __init__(self, v):
        super().__init__(daemon=True)
        self.v, self.done, self.stop, self.error = v, [], threading.Event(), None

    def run(self):
        try:
            while not self.stop.is_set():
                self.done.append(self.v.api("POST", "/v1/devices", {"serial_number": f"W-{len(self.done)}"}))
        except Exception as e:             # noqa: BLE001 (reported by the test)
            self.error = e

    def wait_for(self, n):
        deadline = time.monotonic() + 30
        while len(self.done) < n and time.monotonic() < deadline and self.error is None:
            time.sleep(0.01)
        assert len(self.done) >= n, self.error


def test_restored_registry_authenticates_the_same_devices_and_refuses_their_old_replays(tmp_path):
    (tmp_path / "a").mkdir()
    v = Verifier(tmp_path / "a")
    v2 = None
    try:
        devices = [provision(v, f"SN-{i}") for i in range(3)]
        before = {}
        for d in devices:
            req = d.request()
            assert udp_auth(v, d, req) == (OK, True)
            before[d.hex] = req
        writer = Writer(v)
        writer.start()
        writer.wait_for(20)
        written_before = len(writer.done)
        out = tmp_path / "b" / "janua.backup"
        out.parent.mkdir()
        r = janua("backup", "--db", str(v.db), "--out", str(out), "--step-pages", "2")
        writer.wait_for(written_before + 20)                     # the verifier went on writing
        writer.stop.set()
        writer.join(30)
        assert writer.error is None
        written_after = len(writer.done)
        assert r.returncode == 0, r.stderr
        m = re.fullmatch(r"janua backup: wrote (\S+): (\d+) bytes, (\d+) devices \(1 tenants\) in \d+\.\d\d s\n"
                         r"janua backup: the KEK is not in the backup: keep the KEK file \((\S+)\) safe separately; "
                         r"a restore is useless without it\n", r.stdout)
        assert m, r.stdout
        assert m.group(1) == str(out) and int(m.group(2)) == out.stat().st_size
        assert m.group(4) == f"{v.db}.kek"
        backed_up = int(m.group(3))
        assert 3 + written_before <= backed_up <= 3 + written_after
        assert re.search(r"janua backup: 100% \((\d+)/\1 pages\)\n$", r.stderr), r.stderr
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        # a device the writer made before the backup is in it
        early = AuthDevice(writer.done[0]["device_id"], writer.done[0]["master_secret"], clock=time.time)
        v.stop()

        target = tmp_path / "c" / "janua.db"
        target.parent.mkdir()
        r = janua("restore", "--backup", str(out), "--db", str(target))
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith(f"janua restore: restored {target} from {out}: ")
        assert f" bytes, {backed_up} devices (1 tenants) in " in r.stdout
        v2 = Verifier(target.parent, extra=("--kek-file", f"{v.db}.kek"))
        for d in devices:
            assert udp_auth(v2, d, before[d.hex]) == (REPLAY, True)       # accepted before the backup
            d.last = max(d.last, int(time.time()))
            assert udp_auth(v2, d, d.request()) == (OK, True)             # the same device, a fresh request
        assert udp_auth(v2, early, early.request()) == (OK, True)
    finally:
        v.stop()
        if v2 is not None:
            v2.stop()
