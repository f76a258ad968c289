"""`janua provision`: bulk files (CSV and JSON lines) and one device onto a virtual board, through the
real CLI against a real verifier subprocess (tools/demo.Verifier) on a tmp SQLite file."""

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools import mpremote_util
from tools.demo import Verifier
from tools.vboard import VirtualBoard

ROOT = Path(__file__).resolve().parents[2]


def janua(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "tools", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def verifier(tmp_path_factory):
    v = Verifier(tmp_path_factory.mktemp("verifier"))
    yield v
    v.stop()


def auth_args(v):
    return ["--server", v.url, "--token-file", str(v.token_file)]


def test_bulk_csv_failed_rows_do_not_stop_the_batch(verifier, tmp_path):
    csv = tmp_path / "devices.csv"
    csv.write_text("serial_number,model_id,tags,trust_level\n"
                   "CSV-1,m1,a;b,50\n"
                   "CSV-2,m1,,\n"
                   "CSV-1,m1,,\n"            # duplicate serial within the file
                   "CSV-3,m1,,notanumber\n"  # bad field, refused by the tool before sending
                   "CSV-4,m1,,101\n"         # out of range, refused by the verifier
                   "CSV-5,m2,x,\n")
    r = janua("provision", "--bulk", str(csv), "--batch-size", "2", "--no-progress", *auth_args(verifier))
    assert r.returncode == 1, r.stderr
    assert "6 devices: 3 provisioned, 3 failed" in r.stdout
    assert "line 4" in r.stdout and "line 5" in r.stdout and "line 6" in r.stdout
    manifest = Path(str(csv) + ".manifest.jsonl")
    assert stat.S_IMODE(manifest.stat().st_mode) == 0o600
    rows = [json.loads(x) for x in manifest.read_text().splitlines()]
    assert sorted(x["serial_number"] for x in rows) == ["CSV-1", "CSV-2", "CSV-5"]
    assert all(len(x["master_secret"]) == 64 and len(x["device_id"]) == 16 for x in rows)
    # nothing half-created: the refused serials do not exist in the registry
    listed = verifier.api("GET", "/v1/devices?limit=100")
    serials = {d["serial_number"] for d in listed.get("devices", listed.get("items", []))}
    assert {"CSV-1", "CSV-2", "CSV-5"} <= serials and not {"CSV-3", "CSV-4"} & serials


def test_bulk_jsonl_with_progress_bar_and_summary(verifier, tmp_path):
    f = tmp_path / "devices.jsonl"
    f.write_text("\n".join(json.dumps({"serial_number": f"J-{i}", "group": "g1"}) for i in range(25))
                 + "\nnot json\n")
    r = janua("provision", "--bulk", str(f), "--batch-size", "10", *auth_args(verifier))
    assert "26 devices: 25 provisioned, 1 failed" in r.stdout
    assert "not valid JSON" in r.stdout
    assert "provisioning" in r.stderr and "26/26" in r.stderr     # the tqdm progress bar


def test_bulk_without_token_is_a_clear_error(verifier, tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("serial_number\nX-1\n")
    r = janua("provision", "--bulk", str(f), "--server", verifier.url, "--token", "jna_wrong")
    assert r.returncode == 1 and r.stderr.startswith("janua: ") and "401" in r.stderr


def test_provision_onto_missing_port_leaves_no_active_device(verifier, tmp_path):
    r = janua("provision", "--serial", "PORTLESS-1", "--port", str(tmp_path / "nope"), *auth_args(verifier))
    assert r.returncode == 1 and "janua: " in r.stderr
    listed = verifier.api("GET", "/v1/devices?limit=200")
    devs = [d for d in listed.get("devices", listed.get("items", [])) if d["serial_number"] == "PORTLESS-1"]
    assert devs and all(d["status"] == "decommissioned" for d in devs)


def _board_device_id(port):
    out = mpremote_util.exec_(port, "import json\ntry:\n from janua.store import Store\n"
                                    " print(Store().load_config()['device_id'])\n"
                                    "except Exception as e:\n print('ERR', e)\n")
    return out.strip().splitlines()[-1]


def test_config_write_survives_power_loss_old_or_new(verifier, tmp_path):
    """Kill the board at many points during `janua provision --port`: afterwards it always holds the
    old configuration or the new one, never a mix or nothing."""
    with VirtualBoard("esp32", flash_dir=tmp_path / "flash") as vb:
        port = vb.port
        r = janua("flash", "--port", port, "--board", "esp32")
        assert r.returncode == 0, r.stderr
        r = janua("provision", "--serial", "PL-0", "--port", port, "--transport", "udp", *auth_args(verifier))
        assert r.returncode == 0, r.stderr
        ids = {_board_device_id(port)}
        assert len(next(iter(ids))) == 16
        seen_states = set()
        for i, delay in enumerate((0.05, 0.15, 0.3, 0.45, 0.6, 0.8, 1.0, 1.3)):
            proc = subprocess.Popen([sys.executable, "-m", "tools", "provision", "--serial", f"PL-{i + 1}",
                                     "--port", port, *auth_args(verifier)], cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    start_new_session=True)
            time.sleep(delay)
            vb.kill()                      # power loss, somewhere in the write (or after it)
            try:                           # a dead board leaves mpremote waiting: give up on it
                out, _ = proc.communicate(timeout=3)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)   # the CLI and the mpremote it runs
                out, _ = proc.communicate()
            m = [w for w in out.split() if len(w) == 16 and all(c in "0123456789abcdef" for c in w)]
            if m:
                ids.add(m[0])
            vb.restart()
            assert vb.wait_repl(10)
            now = _board_device_id(port)
            assert now in ids, f"after power loss at {delay}s the board holds {now!r}"
            seen_states.add(now)
            ids = {now} | ids
        files = os.listdir(tmp_path / "flash")
        assert "janua.json" in files or "janua.json.tmp" in files
