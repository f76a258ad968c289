"""The flash store on MicroPython (esp32 profile): atomic writes, .tmp fallback, errors."""

import json
import signal
import subprocess
import time

CFG_A = {"device_id": "3f9a0c1b7d2e4a65", "tenant": "acme", "master_secret": "00" * 32,
         "server": {"host": "127.0.0.1", "udp_port": 5685, "http_port": 8080}, "transport": "udp"}
CFG_B = dict(CFG_A, tenant="bravo", master_secret="11" * 32, transport="http")

PRELUDE = """
import json, os, sys
from janua.store import Store, PosixFS
from janua import StoreError
A = json.loads(%r)
B = json.loads(%r)
def load():
    try:
        return Store().load_config()["tenant"]
    except StoreError as e:
        return "error: %%s" %% e
""" % (json.dumps(CFG_A), json.dumps(CFG_B))


def test_roundtrip_and_missing_file(mp):
    out = mp(PRELUDE + """
before = load()
Store().save_config(A)
print(json.dumps([before, load(), sorted(os.listdir())]))
""")[0]
    assert out[0].startswith("error:") and "not found" in out[0]
    assert out[1] == "acme" and out[2] == ["janua.json"]


def test_power_cut_before_rename_keeps_old_config(mp):
    mp(PRELUDE + "Store().save_config(A)\n")
    p = mp.raw(PRELUDE + """
class CutBeforeRename(PosixFS):
    def rename(self, a, b):
        sys.exit(3)  # the power goes: .tmp is complete, the rename never happens
Store(fs=CutBeforeRename()).save_config(B)
""")
    assert p.returncode == 3
    out = mp(PRELUDE + "print(json.dumps(load()))\n")[0]
    assert out == "acme"


def test_truncated_tmp_is_ignored(mp):
    mp(PRELUDE + "Store().save_config(A)\n")
    (mp.flash / "janua.json.tmp").write_text(json.dumps(CFG_B)[:40])
    assert mp(PRELUDE + "print(json.dumps(load()))\n")[0] == "acme"


def test_tmp_used_when_main_missing_and_rename_finished(mp):
    (mp.flash / "janua.json.tmp").write_text(json.dumps(CFG_B))
    out = mp(PRELUDE + "print(json.dumps([load(), sorted(os.listdir())]))\n")[0]
    assert out == ["bravo", ["janua.json"]]


def test_corrupt_config_is_a_store_error(mp):
    (mp.flash / "janua.json").write_text("{not json")
    out = mp(PRELUDE + "print(json.dumps(load()))\n")[0]
    assert out.startswith("error:") and "not valid JSON" in out


def test_invalid_fields_rejected(mp):
    bad = [dict(CFG_A, device_id="XYZ"), dict(CFG_A, master_secret="00"),
           dict(CFG_A, transport="carrier-pigeon"), dict(CFG_A, server={"host": ""}),
           dict(CFG_A, server={"host": "h", "udp_port": 70000})]
    out = mp(PRELUDE + """
res = []
for c in json.loads(%r):
    try:
        Store().save_config(c); res.append("saved")
    except StoreError as e:
        res.append("error")
print(json.dumps([res, os.listdir()]))
""" % json.dumps(bad))[0]
    assert out == [["error"] * len(bad), []]


def test_full_flash_raises_store_error_and_keeps_old_file(mp):
    out = mp(PRELUDE + """
Store().save_config(A)
class FullFile:
    def __init__(self, f): self.f = f
    def write(self, s):
        self.f.write(s[:10])
        raise OSError(28)  # ENOSPC
    def flush(self): self.f.flush()
    def close(self): self.f.close()
class FullFS(PosixFS):
    def open(self, path, mode):
        f = open(path, mode)
        return FullFile(f) if "w" in mode else f
try:
    Store(fs=FullFS()).save_config(B); msg = "saved"
except StoreError as e:
    msg = str(e)
print(json.dumps([msg, load(), sorted(os.listdir())]))
""")[0]
    assert "flash full" in out[0]
    assert out[1] == "acme" and out[2] == ["janua.json"]


def test_state_file_never_holds_the_secret(mp):
    out = mp(PRELUDE + """
s = Store()
s.save_state({"result": "ok", "at": 5})
try:
    s.save_state({"master_secret": "00" * 32}); r = "saved"
except StoreError:
    r = "refused"
print(json.dumps([s.load_state(), r]))
""")[0]
    assert out == [{"result": "ok", "at": 5}, "refused"]


def test_killed_writer_leaves_old_or_new_never_a_mix(mp):
    """SIGKILL a process that rewrites the config in a loop; every survivor state loads whole."""
    mp(PRELUDE + "Store().save_config(A)\n")
    writer = PRELUDE + """
s = Store()
while True:
    s.save_config(B)
    s.save_config(A)
"""
    path = mp.flash.parent / "writer.py"
    path.write_text(writer)
    from tools.boards import FIRMWARE_DIR, micropython_cmd
    seen = set()
    for delay in (0.05, 0.08, 0.11, 0.13, 0.17, 0.2):
        argv, env = micropython_cmd("esp32", path, path=[FIRMWARE_DIR, mp.lib])
        proc = subprocess.Popen(argv, env=env, cwd=mp.flash)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        got = mp(PRELUDE + "print(json.dumps(load()))\n")[0]
        assert got in ("acme", "bravo"), got
        seen.add(got)
    assert seen
