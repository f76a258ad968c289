"""Power cuts during a real update over HTTP: a `janua serve` subprocess offers v2 to a board (the
unix port as an esp32, firmware as .mpy) that runs v1; otaclient.poll() downloads, verifies, stages
and switches, and the board is killed (SIGKILL from the host: no `finally`, no flush) at the k-th
I/O step of that poll: every read of an HTTP response body (the check and report answers, the
manifest, the signature and each file's chunks) and every mutating filesystem call (open for
writing, write, flush, rename, remove, mkdir, rmdir, sync). Then the board boots: it must run a
complete, verified application, v1 or v2 (never a mix), and a later poll must end on v2.

The default run kills at every step of a 12 KiB update (about 60 points, every third one followed by
the resumed update and a poll that must deliver v2's `confirmed` to the verifier); `-m slow` (or JANUA_SLOW=1) does it for a 100 KiB application with every cut
resumed, and kills at 40 random wall-clock moments of the poll (HTTP, Ed25519, hashing, flash)."""

import json
import random
import shutil
import signal
import sqlite3
import subprocess
import time

import pytest

from tests.ota.ota_helpers import BOOT_CHECK as CHECK
from tests.ota_verifier.conftest import make_bundle
from tools import ota as host
from tools import ota_release
from tools.api import API
from tools.boards import micropython_cmd
from tools.build import build_firmware
from tools.demo import Verifier

pytestmark = pytest.mark.e2e

TICK = """
import sys, json, time
from janua import otaclient, httpreq
from janua.ota import FlashFS, AppSlots
LEFT = [%d]
AFTER = None     # a file name: the power also goes right after the rename onto it completes
def cut(site):
    print("CUT " + site)
    while True:
        time.sleep(1)    # the host kills the board here
def tick(site):
    LEFT[0] -= 1
    if LEFT[0] == 0:
        cut(site)
_readinto = httpreq.HTTPBody.readinto
def readinto(self, buf):
    tick("http")
    return _readinto(self, buf)
httpreq.HTTPBody.readinto = readinto
class CutFS(FlashFS):
    def open(self, path, mode):
        f = FlashFS.open(self, path, mode)
        if "r" in mode:
            return f
        tick("fs")
        class W:
            def write(self, b):
                tick("fs")
                return f.write(b)
            def flush(self):
                tick("fs")
                f.flush()
            def close(self):
                f.close()
        return W()
def _wrap(name):
    real = getattr(FlashFS, name)
    def op(self, *a):
        tick("fs")
        r = real(self, *a)
        if name == "rename" and a[1] == AFTER:
            cut("after-rename:" + a[1])
        return r
    return op
for _n in ("rename", "remove", "mkdir", "rmdir", "sync"):
    setattr(CutFS, _n, _wrap(_n))
r, line = otaclient.poll(slots=AppSlots(CutFS()))
print(json.dumps({"poll": r, "line": line, "steps": %d - LEFT[0]}))
"""


POLL = """
import json
from janua import otaclient
r, line = otaclient.poll()
print(json.dumps({"poll": r, "line": line}))
"""

APP = ("import json\nfrom janua.ota import confirm\nconfirm()\n"
       "from blobs import SIZE\nprint(json.dumps({'app': '%s', 'blob': SIZE}))\n")


def app_files(version, kib):
    # main.py confirms at once; blob.bin (its bytes differ per version) makes the download many
    # 4 KiB chunks long
    return {"main.py": APP % version, "blobs.py": f"SIZE = {kib * 1024}\n",
            "data/blob.bin": (version + "|") * (kib * 1024 // (len(version) + 1)) + "#" * (kib * 1024 % (len(version) + 1))}


class Board:
    def __init__(self, root):
        self.root = root
        self.flash = root / "flash"
        self.flash.mkdir(parents=True)
        build_firmware(root / "fw", "unix", main_file=root / "none")   # .mpy, as shipped
        self.n = 0

    def _argv(self, script):
        self.n += 1
        path = self.root / f"s{self.n % 4}.py"
        path.write_text(script)
        return micropython_cmd("esp32", path, path=[self.root / "fw" / "lib"])

    def run(self, script):
        argv, env = self._argv(script)
        p = subprocess.run(argv, env=env, cwd=self.flash, capture_output=True, text=True, timeout=120)
        assert p.returncode in (0, 1), p.stdout + p.stderr   # 1: janua_hal.reset on the unix port
        return [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")], p.stdout + p.stderr

    def cut_at(self, k, after=None):
        """Run the poll and kill the board at its k-th I/O step: the site ("http"/"fs"), or None
        when the poll ended before step k (its JSON result is returned then). `after`: also kill
        it right after a rename onto that file (site "after-rename:<file>")."""
        script = TICK % (k, k)
        if after is not None:
            script = script.replace("AFTER = None", "AFTER = %r" % after)
        argv, env = self._argv(script)
        p = subprocess.Popen(argv, env=env, cwd=self.flash, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        try:
            for line in p.stdout:
                if line.startswith("CUT "):
                    p.send_signal(signal.SIGKILL)     # the power goes
                    p.wait(10)
                    return line.split()[1], None
                if line.startswith("{"):
                    p.wait(60)
                    return None, json.loads(line)
            p.wait(60)
            raise AssertionError("the cut run ended without a result: " + p.stderr.read())
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(10)
            p.stdout.close()
            p.stderr.close()

    def snapshot(self, to):
        shutil.rmtree(to, ignore_errors=True)
        shutil.copytree(self.flash, to)

    def restore(self, frm):
        # the flash as it was before the update, but the binary-auth timestamp as it is now: it
        # only ever grows on a board (restoring it would replay timestamps the verifier saw)
        state = (self.flash / "janua_state.json").read_bytes()
        shutil.rmtree(self.flash)
        shutil.copytree(frm, self.flash)
        (self.flash / "janua_state.json").write_bytes(state)

    def ptr(self):
        p = self.flash / "ota_ptr.json"
        return json.loads(p.read_text()) if p.exists() else {}


@pytest.fixture
def fleet(tmp_path, signing):
    v = Verifier(tmp_path)
    try:
        api = API(v.url, token_file=str(v.token_file))
        # one device polls hundreds of times within a minute here: lift its rate limit, and allow
        # its binary-auth timestamps (one second more per call) to run ahead of the wall clock
        api.call("PATCH", "/v1/tenant", {"policy": {"device_rate": {"capacity": 10000, "refill_per_s": 1000},
                                                    "drift_s": 3600}})
        # OTA alone: no attestation challenge after the check (its binary-auth calls would shift the
        # flash writes the power cuts are scheduled at)
        api.call("PUT", "/v1/attest/policy", {"interval_s": 0})
        ota_release.trust_key(api, signing["release"]["pub"], "release")
        pkg = api.call("POST", "/v1/devices", {"serial_number": "CUT-1"})
        board = Board(tmp_path / "board")
        board.api, board.db = api, v.db
        (board.flash / "janua.json").write_text(json.dumps({
            "device_id": pkg["device_id"], "master_secret": pkg["master_secret"], "transport": "http",
            "server": {"host": "127.0.0.1", "http_port": v.http_port}}))
        kid, raw = host.load_public(signing["release"]["pub"])
        (board.flash / "ota.json").write_text(json.dumps({"keys": {kid: raw.hex()}, "hw_version": 2}))
        yield v, api, board
    finally:
        v.stop()


def publish(v, api, tmp_path, signing, version, counter, kib, files=None, **kw):
    b = make_bundle(tmp_path / "rel", signing, version, counter, boards=["esp32", "unix"],
                    files=files or app_files(version, kib), **kw)
    rel = ota_release.publish(api, b)
    # one device is in a 1 % phase only by chance: a single 100 % phase (as an operator would)
    ro = api.call("POST", f"/v1/releases/{rel['id']}/rollout", {"start": True, "phases": [{"percent": 100}]})
    rel["rollout_id"] = ro["id"]
    return rel


def on_v1(v, api, board, tmp_path, signing, kib, v2_files=None, **kw):
    """Install and confirm v1, publish v2; return the flash snapshot to restart every cut from
    (and v2's release)."""
    publish(v, api, tmp_path, signing, "1.0.0", 1, kib)
    out, text = board.run(POLL)
    assert {"poll": "installed", "line": "janua ota: installed 1.0.0 (trial): reset to run it"} in out, text
    out, text = board.run(CHECK)
    assert {"app": "1.0.0", "blob": kib * 1024} in out, text
    rel = publish(v, api, tmp_path, signing, "2.0.0", 2, kib, v2_files, **kw)
    snap = tmp_path / "snap"
    board.snapshot(snap)
    board.v2 = rel
    return snap


def check_boot(board, where):
    out, text = board.run(CHECK)
    assert out and out[0]["consistent"] is True, (where, text)
    apps = [o["app"] for o in out if "app" in o]
    assert apps in (["1.0.0"], ["2.0.0"]), (where, text)          # a whole old or new application
    assert out[0]["ptr"] == apps[0], (where, text)
    return apps[0]


def outcome(api, rel):
    """The verifier's devices by latest report for a release's rollout (only the non-zero ones)."""
    return {k: n for k, n in ota_release.status(api, rel["rollout_id"])["counts"].items() if n}


def finish(board, where):
    """After the cut and a boot: polling again ends on v2, confirmed (the update restarts cleanly)."""
    if board.ptr().get("version") != "2.0.0":
        out, text = board.run(POLL)
        assert {"poll": "installed", "line": "janua ota: installed 2.0.0 (trial): reset to run it"} in out, \
            (where, text)
        assert check_boot(board, where) == "2.0.0"
    p = board.ptr()
    assert p["version"] == "2.0.0" and p["state"] == "confirmed", (where, p)
    out, text = board.run(POLL)                 # and the verifier hears of it
    assert {"poll": "none", "line": "janua ota: up to date"} in out, (where, text)
    assert outcome(board.api, board.v2) == {"confirmed": 1}, where
    with sqlite3.connect(board.db) as c:        # test only: forget it, so the next cut is offered v2 again
        c.execute("DELETE FROM ota_reports WHERE release_id = ?", (board.v2["id"],))


def count_points(board, snap):
    """The number of I/O steps of the uncut poll."""
    board.restore(snap)
    site, res = board.cut_at(10 ** 6)
    assert site is None and res["poll"] == "installed", res
    return res["steps"]


def run_cuts(board, snap, points, resume_every):
    sites = {"http": 0, "fs": 0}
    seen = set()
    for i, k in enumerate(points):
        board.restore(snap)
        site, res = board.cut_at(k)
        if site is None:
            # the poll ended first: how many reads a body takes depends on how TCP delivers it,
            # so the last few points of the counted run may not exist in this one
            assert res["poll"] == "installed" and k > res["steps"] >= len(points) - 10, (k, res)
            site = "none"
        sites[site] = sites.get(site, 0) + 1
        seen.add(check_boot(board, (k, site)))
        if i % resume_every == 0:
            finish(board, (k, site))
    return sites, seen


def test_power_cut_at_every_step_of_an_http_update(fleet, tmp_path, signing):
    v, api, board = fleet
    snap = on_v1(v, api, board, tmp_path, signing, kib=12)
    n = count_points(board, snap)
    assert n >= 50, n
    sites, seen = run_cuts(board, snap, range(1, n + 1), resume_every=3)
    assert sites["http"] >= 15 and sites["fs"] >= 15, sites   # download reads, staging and switch
    assert seen == {"1.0.0", "2.0.0"}                          # cuts before and after the switch
    board.restore(snap)                                        # and the uncut update, to the end
    finish(board, "uncut")


def test_cut_right_after_the_slot_switch_still_reports_confirmed(fleet, tmp_path, signing):
    # The window of issue #10: the pointer rename is done, the client state is not yet written (it
    # still held {} from v1's outcome). v2 boots and confirms; the next poll must tell the verifier.
    v, api, board = fleet
    snap = on_v1(v, api, board, tmp_path, signing, kib=4)
    board.restore(snap)
    site, res = board.cut_at(10 ** 6, after="ota_ptr.json")
    assert site == "after-rename:ota_ptr.json", res
    assert check_boot(board, "after switch") == "2.0.0"
    assert board.ptr()["state"] == "confirmed"
    out, text = board.run(POLL)
    assert {"poll": "none", "line": "janua ota: up to date"} in out, text
    assert outcome(api, board.v2) == {"confirmed": 1}


def test_cut_right_after_the_slot_switch_still_reports_the_rollback(fleet, tmp_path, signing):
    # The same window with a release that crashes at start: its trial boots run out, the board goes
    # back to v1 by itself, and the verifier must hear "rolled_back" (its health check and
    # automatic halt count it), with the crash as the reason.
    v, api, board = fleet
    bad = {"main.py": "raise RuntimeError('v2 cannot start')\n"}
    snap = on_v1(v, api, board, tmp_path, signing, kib=4, v2_files=bad, trial_boots=2)
    board.restore(snap)
    site, res = board.cut_at(10 ** 6, after="ota_ptr.json")
    assert site == "after-rename:ota_ptr.json", res
    runs = []
    for _ in range(4):
        out, text = board.run(CHECK)   # the pointer before the boot, then what ran
        runs.append((out[0]["ptr"], [o["app"] for o in out if "app" in o]))
        if runs[-1][1]:
            break
    # two trial boots crash (and reset), the third finds them used up and runs v1
    assert runs == [("2.0.0", []), ("2.0.0", []), ("2.0.0", ["1.0.0"])], runs
    out, text = board.run(POLL)
    assert {"poll": "none", "line": "janua ota: up to date"} in out, text
    assert outcome(api, board.v2) == {"rolled_back": 1}
    with sqlite3.connect(v.db) as c:
        (reason,) = c.execute("SELECT reason FROM ota_reports WHERE state = 'rolled_back'").fetchone()
    assert reason == "not confirmed after 2 boots; last error: RuntimeError: v2 cannot start"


@pytest.mark.slow
def test_power_cut_at_every_step_of_a_larger_http_update(fleet, tmp_path, signing):
    v, api, board = fleet
    snap = on_v1(v, api, board, tmp_path, signing, kib=100)
    n = count_points(board, snap)
    sites, seen = run_cuts(board, snap, range(1, n + 1), resume_every=1)
    assert sites["http"] >= 30 and sites["fs"] >= 20 and seen == {"1.0.0", "2.0.0"}, sites


@pytest.mark.slow
def test_power_cut_at_random_moments_of_poll_and_reboot(fleet, tmp_path, signing):
    # wall-clock kills: wherever the board happens to be (HTTP, Ed25519, hashing, flash writes)
    v, api, board = fleet
    snap = on_v1(v, api, board, tmp_path, signing, kib=100)
    rnd = random.Random(7)
    t0 = time.monotonic()
    board.restore(snap)
    board.run(POLL)
    full = time.monotonic() - t0
    for i in range(40):
        board.restore(snap)
        argv, env = board._argv(POLL)
        p = subprocess.Popen(argv, env=env, cwd=board.flash, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(rnd.uniform(0, full))
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        check_boot(board, ("random", i))
        finish(board, ("random", i))
