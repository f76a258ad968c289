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


def role_args(v, tmp_path, role):
    """--server and a --token-file holding a new token of `role` (janua tenant token, 0600 like the CLI's)."""
    r = janua("tenant", "token", "default", "--db", str(v.db), "--role", role, "--label", "test")
    assert r.returncode == 0, r.stderr
    f = tmp_path / f"{role}.token"
    fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(r.stdout.strip() + "\n")
    return ["--server", v.url, "--token-file", str(f)]


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


def _devices(verifier, serial):
    listed = verifier.api("GET", "/v1/devices?limit=1000")
    return [d for d in listed["devices"] if d["serial_number"] == serial]


def test_port_typo_registers_no_device(verifier, tmp_path):
    r = janua("provision", "--serial", "PORTLESS-1", "--port", str(tmp_path / "nope"), *auth_args(verifier))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[0] == f"janua: no such port: {tmp_path / 'nope'}"
    assert _devices(verifier, "PORTLESS-1") == []           # nothing to decommission: the serial stays free
    assert "provisioned device" not in r.stdout


def test_port_that_is_no_board_registers_no_device(verifier, tmp_path):
    not_a_board = tmp_path / "ttyFAKE"
    not_a_board.write_text("")
    r = janua("provision", "--serial", "NOBOARD-1", "--port", str(not_a_board), *auth_args(verifier), timeout=90)
    assert r.returncode == 1 and r.stderr.startswith("janua: ") and "Traceback" not in r.stderr
    assert _devices(verifier, "NOBOARD-1") == [] and "provisioned device" not in r.stdout   # not even for a moment


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
                                     "--port", port, "--force", *auth_args(verifier)], cwd=ROOT,
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
            ids.update(m)                  # the new id (and, after --force, the old one it names)
            vb.restart()
            assert vb.wait_repl(10)
            now = _board_device_id(port)
            assert now in ids, f"after power loss at {delay}s the board holds {now!r}"
            seen_states.add(now)
            ids = {now} | ids
        files = vb.root.listdir()
        assert "janua.json" in files or "janua.json.tmp" in files


# ---------------------------------------------------------------- bulk: the manifest is never lost

def test_second_bulk_run_never_truncates_manifest(verifier, tmp_path):
    csv = tmp_path / "factory.csv"
    csv.write_text("serial_number\nRERUN-1\nRERUN-2\n")
    r = janua("provision", "--bulk", str(csv), "--no-progress", *auth_args(verifier))
    assert r.returncode == 0, r.stderr
    first = Path(str(csv) + ".manifest.jsonl")
    saved = first.read_bytes()
    assert [json.loads(x)["serial_number"] for x in saved.splitlines()] == ["RERUN-1", "RERUN-2"]
    # the operator adds rows to the partly done file and runs it again: the first two are refused as duplicates
    csv.write_text("serial_number\nRERUN-1\nRERUN-2\nRERUN-3\n")
    r = janua("provision", "--bulk", str(csv), "--no-progress", *auth_args(verifier))
    assert r.returncode == 1 and "3 devices: 1 provisioned, 2 failed" in r.stdout
    assert first.read_bytes() == saved                       # the first run's secrets, untouched
    second = tmp_path / "factory.csv.manifest-2.jsonl"
    assert f"janua: deployment manifest (holds device secrets, mode 0600): {second}" in r.stdout.splitlines()
    assert stat.S_IMODE(second.stat().st_mode) == 0o600
    assert [json.loads(x)["serial_number"] for x in second.read_text().splitlines()] == ["RERUN-3"]


def test_rerun_that_creates_nothing_leaves_no_empty_manifest(verifier, tmp_path):
    csv = tmp_path / "done.csv"
    csv.write_text("serial_number\nDONE-1\n")
    assert janua("provision", "--bulk", str(csv), "--no-progress", *auth_args(verifier)).returncode == 0
    r = janua("provision", "--bulk", str(csv), "--no-progress", *auth_args(verifier))
    assert r.returncode == 1 and "janua: no device was created, so no manifest was written" in r.stdout
    assert sorted(os.listdir(tmp_path)) == ["done.csv", "done.csv.manifest.jsonl"]


def test_existing_manifest_named_with_flag_is_refused_before_any_device_is_made(verifier, tmp_path):
    csv = tmp_path / "d.csv"
    csv.write_text("serial_number\nKEEP-1\n")
    old = tmp_path / "old.jsonl"
    old.write_text('{"device_id": "earlier", "master_secret": "only copy"}\n')
    os.chmod(old, 0o644)
    r = janua("provision", "--bulk", str(csv), "--manifest", str(old), "--no-progress", *auth_args(verifier))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[0] == (f"janua: the manifest {old} exists; it may hold the only copy of "
                                        "devices' secrets")
    assert old.read_text() == '{"device_id": "earlier", "master_secret": "only copy"}\n'
    assert stat.S_IMODE(old.stat().st_mode) == 0o644         # not ours: left exactly as it was
    assert _devices(verifier, "KEEP-1") == []


def test_manifest_is_0600_under_a_permissive_umask(verifier, tmp_path):
    csv = tmp_path / "u.csv"
    csv.write_text("serial_number\nUMASK-1\n")
    r = subprocess.run([sys.executable, "-m", "tools", "provision", "--bulk", str(csv), "--no-progress",
                        *auth_args(verifier)], capture_output=True, text=True, timeout=120, cwd=ROOT,
                       preexec_fn=lambda: os.umask(0))
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(Path(str(csv) + ".manifest.jsonl").stat().st_mode) == 0o600


# ---------------------------------------------------------------- bulk: what the file holds

def test_bulk_file_that_is_not_utf8_is_one_line_error(verifier, tmp_path):
    f = tmp_path / "latin.csv"
    f.write_bytes(bytes.fromhex("0a850a"))
    r = janua("provision", "--bulk", str(f), "--no-progress", *auth_args(verifier))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.splitlines() == [f"janua: {f}: line 2: not UTF-8 text (byte 0x85)",
                                     'janua: hint: save it as UTF-8 (a spreadsheet\'s "CSV UTF-8"), or as JSON lines']
    assert not Path(str(f) + ".manifest.jsonl").exists()


def test_bulk_csv_with_a_utf8_bom_keeps_its_serial_number_column(verifier, tmp_path):
    f = tmp_path / "excel.csv"
    f.write_bytes(b"\xef\xbb\xbfserial_number,location\r\nBOM-1,Z\xc3\xbcrich\r\n")
    r = janua("provision", "--bulk", str(f), "--no-progress", *auth_args(verifier))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 devices: 1 provisioned, 0 failed" in r.stdout
    assert _devices(verifier, "BOM-1")[0]["metadata"]["location"] == "Zürich"


def test_semicolon_csv_is_one_line_error_naming_the_separator(verifier, tmp_path):
    f = tmp_path / "semi.csv"
    f.write_text("serial_number;model_id\nSEMI-1;m1\n")
    r = janua("provision", "--bulk", str(f), "--no-progress", *auth_args(verifier))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[0] == (f"janua: {f}: line 1: the columns are separated by semicolons; "
                                        "janua reads comma-separated CSV")
    assert _devices(verifier, "SEMI-1") == [] and _devices(verifier, "SEMI-1;m1") == []


def test_bulk_errors_name_each_line_once_and_count_quoted_line_breaks(verifier, tmp_path):
    f = tmp_path / "lines.csv"
    f.write_text('serial_number,location,trust_level\n'
                 'LN-1,"two\nlines",\n'           # one record on lines 2-3
                 '\n'                              # a blank line 4
                 'LN-2,,notanumber\n'              # line 5
                 'LN-3,,1,extra\n')                # line 6
    r = janua("provision", "--bulk", str(f), "--no-progress", *auth_args(verifier))
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert "  line 5: trust_level must be an integer, not 'notanumber'" in lines
    assert "  line 6: 4 fields, but the header names 3" in lines
    assert "line 6: line 6" not in r.stdout and "line 5: line 5" not in r.stdout


def test_jsonl_error_names_its_line_once(verifier, tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text('{"serial_number": "JL-1"}\n[1]\n{"serial_number": \n')
    r = janua("provision", "--bulk", str(f), "--no-progress", *auth_args(verifier))
    lines = r.stdout.splitlines()
    assert "  line 2: not a JSON object" in lines
    assert [ln for ln in lines if ln.startswith("  line 3: not valid JSON")] and r.stdout.count("line 3") == 1


def test_bulk_metadata_that_is_not_an_object_is_a_row_error_not_a_traceback(verifier, tmp_path):
    """Found by the bulk fuzz target (make fuzz): a JSON-lines `metadata` that is no object, or a CSV
    column named metadata, made to_api_row raise out of the batch."""
    f = tmp_path / "m.jsonl"
    f.write_text('{"serial_number": "MD-1", "metadata": 3}\n{"serial_number": "MD-2", "metadata": {"group": "g"}}\n')
    r = janua("provision", "--bulk", str(f), "--no-progress", *auth_args(verifier))
    assert "Traceback" not in r.stderr and "  line 1: metadata must be a JSON object" in r.stdout.splitlines()
    c = tmp_path / "m.csv"
    c.write_text("serial_number,metadata\nMD-3,x\n")
    r = janua("provision", "--bulk", str(c), "--no-progress", *auth_args(verifier))
    assert "Traceback" not in r.stderr
    assert [ln for ln in r.stdout.splitlines() if ln.startswith("  line 2: a CSV has no metadata column")]


# ---------------------------------------------------------------- URLs

@pytest.mark.parametrize("argv", [
    ("provision", "--serial", "URL-1", "--server", "notaurl", "--token", "jna_x"),
    ("provision", "--bulk", "whatever.csv", "--server", "notaurl", "--token", "jna_x"),
    ("device", "delete", "0123456789abcdef", "--server", "http://127.0.0.1:notaport", "--token", "jna_x"),
    ("ota", "status", "r1", "--server", "ftp://127.0.0.1/", "--token", "jna_x"),
    ("provision", "--serial", "URL-2", "--server", "http://", "--token", "jna_x"),
])
def test_server_that_is_not_a_url_is_one_line_error(argv):
    r = janua(*argv)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[0].startswith(f"janua: --server must be an http:// or https:// URL, not ")


def test_edge_upstream_that_is_not_a_url_is_one_line_error(tmp_path):
    tok = tmp_path / "edge.token"
    tok.write_text("jna_" + "a" * 43 + "\n")
    r = janua("serve", "--edge", "--upstream", "http://cloud:port", "--upstream-token-file", str(tok),
              "--db", str(tmp_path / "e.db"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[0] == "janua: --upstream must be an http:// or https:// URL, not 'http://cloud:port'"


def test_bad_edge_url_registers_no_device(verifier):
    r = janua("provision", "--serial", "EDGE-URL-1", "--edge", "http://edge:port", *auth_args(verifier))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert _devices(verifier, "EDGE-URL-1") == []


# ---------------------------------------------------------------- janua device delete

def test_device_delete_frees_the_serial_of_a_device_that_never_authenticated(verifier):
    r = janua("provision", "--serial", "DEL-1", *auth_args(verifier))
    assert r.returncode == 0, r.stderr
    dev = json.loads(r.stdout[r.stdout.index("{"):])["device_id"]
    r = janua("device", "delete", dev, *auth_args(verifier))
    assert r.returncode == 0 and r.stdout == f"janua: deleted device {dev}; its serial can be provisioned again\n"
    assert _devices(verifier, "DEL-1") == []
    assert janua("provision", "--serial", "DEL-1", *auth_args(verifier)).returncode == 0
    r = janua("device", "delete", dev, *auth_args(verifier))
    assert r.returncode == 1 and r.stderr.splitlines()[0] == f"janua: no device {dev} in this tenant"


def test_device_delete_never_removes_a_device_that_authenticated(verifier):
    import urllib.request
    from verifier import keys
    from verifier.binauth.core import encode_request
    r = janua("provision", "--serial", "DEL-AUTH-1", *auth_args(verifier))
    pkg = json.loads(r.stdout[r.stdout.index("{"):])
    key = keys.derive_key(bytes.fromhex(pkg["master_secret"]), keys.LABEL_BINAUTH)
    req = urllib.request.Request(verifier.url + "/v1/binauth", method="POST",
                                 data=encode_request(key, bytes.fromhex(pkg["device_id"]), int(time.time())),
                                 headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200 and resp.read()[0] == 0           # OK: it authenticated
    r = janua("device", "delete", pkg["device_id"], *auth_args(verifier))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[0] == (f"janua: device {pkg['device_id']} cannot be deleted: it has "
                                        "authenticated: decommission it instead")
    assert [d["status"] for d in _devices(verifier, "DEL-AUTH-1")] == ["active"]


@pytest.mark.parametrize("bad", ["xyz", "0123456789abcde", "0123456789abcdefg"])
def test_device_delete_refuses_what_is_no_device_id(verifier, bad):
    r = janua("device", "delete", bad, *auth_args(verifier))
    assert r.returncode == 1 and r.stderr.splitlines()[0] == f"janua: a device id is 16 hex characters, not {bad!r}"


# ---------------------------------------------------------------- a board that already holds an identity

def test_board_holding_an_identity_is_refused_without_force(verifier, tmp_path):
    with VirtualBoard("esp32", flash_dir=tmp_path / "flash") as vb:
        port = vb.port
        r = janua("flash", "--port", port, "--board", "esp32")
        assert r.returncode == 0, r.stderr
        r = janua("provision", "--serial", "HELD-1", "--port", port, "--transport", "udp", *auth_args(verifier))
        assert r.returncode == 0, r.stderr
        held = _board_device_id(port)
        before = (vb.root / "janua.json").read_bytes()
        r = janua("provision", "--serial", "HELD-2", "--port", port, *auth_args(verifier))
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert r.stderr.splitlines()[0] == (f"janua: the board at {port} already holds device {held} (serial HELD-1, "
                                            "provisioning); nothing was registered")
        assert _devices(verifier, "HELD-2") == []
        assert (vb.root / "janua.json").read_bytes() == before
        r = janua("provision", "--serial", "HELD-2", "--port", port, "--force", *auth_args(verifier))
        assert r.returncode == 0, r.stderr
        new = _board_device_id(port)
        assert new != held and [d["device_id"] for d in _devices(verifier, "HELD-2")] == [new]
        assert [d["status"] for d in _devices(verifier, "HELD-1")] == ["decommissioned"]


def test_failed_board_write_leaves_the_serial_free(verifier, tmp_path):
    """The board answers, but the credentials cannot be written (here: a non-empty directory named janua.json):
    the device is withdrawn, decommissioned and deleted, so the same serial can be provisioned once it is fixed."""
    vb = VirtualBoard("esp32", flash_dir=tmp_path / "flash")
    flash = vb.root                        # the board's LittleFS, written before it powers on
    (flash / "janua.json").mkdir()
    (flash / "janua.json" / "x").write_text("x")
    with vb:
        r = janua("provision", "--serial", "WRITEFAIL-1", "--port", vb.port, *auth_args(verifier))
        assert r.returncode == 1 and 'File "/' not in r.stderr     # the hint may quote the board's traceback
        first = r.stderr.splitlines()[0]
        assert first.startswith(f"janua: could not write the credentials onto the board at {vb.port}: ")
        assert first.endswith("was deleted again (its serial is free)")
        assert _devices(verifier, "WRITEFAIL-1") == []
        assert not (flash / "janua.json.tmp").exists()       # the withdrawn identity is not left for the store
        (flash / "janua.json" / "x").unlink()
        (flash / "janua.json").rmdir()
        r = janua("provision", "--serial", "WRITEFAIL-1", "--port", vb.port, *auth_args(verifier))
        assert r.returncode == 0, r.stderr
        assert [d["status"] for d in _devices(verifier, "WRITEFAIL-1")] == ["provisioning"]


def test_failed_board_write_with_a_factory_token_deletes_the_device_and_revokes_its_certificate(verifier, tmp_path):
    """A factory token cannot decommission: the delete alone takes back the device and its certificate."""
    vb = VirtualBoard("esp32", flash_dir=tmp_path / "flash")
    flash = vb.root                        # the board's LittleFS, written before it powers on
    (flash / "janua.json").mkdir()
    (flash / "janua.json" / "x").write_text("x")
    with vb:
        r = janua("provision", "--serial", "WRITEFAIL-F1", "--port", vb.port, "--credential", "certificate",
                  *role_args(verifier, tmp_path, "factory"))
        assert r.returncode == 1 and 'File "/' not in r.stderr
        first = r.stderr.splitlines()[0]
        assert first.startswith(f"janua: could not write the credentials onto the board at {vb.port}: ")
        assert first.endswith("was deleted again (its serial is free)")
    assert _devices(verifier, "WRITEFAIL-F1") == []
    dev = r.stdout.split("janua: provisioned device ")[1][:16]
    entries = verifier.api("GET", f"/v1/audit?device_id={dev}")["entries"]
    assert [(e["action"], e["result"], e["reason"]) for e in entries if e["action"] == "device.delete"] == [
        ("device.delete", "ok", "serial WRITEFAIL-F1, provisioning, never authenticated; 1 certificate(s) revoked")]
    from cryptography import x509                                # the certificate is on the tenant's CRL
    serial = r.stdout.split(f"janua: device {dev}: certificate ")[1].split(" ")[0]
    crl = x509.load_pem_x509_crl(verifier.api("GET", "/v1/ca")["crl_pem"].encode())
    assert crl.get_revoked_certificate_by_serial_number(int(serial, 16)) is not None


class _FakeAPI:
    """Answers DELETE and the decommission with the given CLIErrors (None: success); records the calls."""

    def __init__(self, delete=None, decommission=None):
        self.answers, self.calls = {"DELETE": delete, "POST": decommission}, []

    def call(self, method, path, body=None):
        self.calls.append((method, path))
        if self.answers[method] is not None:
            raise self.answers[method]
        return {}


@pytest.mark.parametrize("delete, decommission, fate", [
    (None, None, "deleted again (its serial is free)"),
    ("cannot reach the verifier", None,
     "decommissioned, not deleted (cannot reach the verifier): its serial stays taken; "
     "`janua device delete 00112233aabbccdd` frees it"),
    ("this route needs a token with role factory (or admin); this token's role is operator", None,
     "decommissioned, not deleted (this route needs a token with role factory (or admin); this token's role is "
     "operator): its serial stays taken; `janua device delete 00112233aabbccdd` frees it"),
    ("cannot reach the verifier", "cannot reach the verifier",
     "left registered: it could not be deleted (cannot reach the verifier) nor decommissioned (cannot reach the "
     "verifier); run `janua device delete 00112233aabbccdd` with a factory or admin token"),
])
def test_withdraw_says_what_became_of_the_device(delete, decommission, fate):
    from tools.errors import CLIError
    from tools.provision import _withdraw
    api = _FakeAPI(delete and CLIError(delete), decommission and CLIError(decommission))
    assert _withdraw(api, "00112233aabbccdd", "provisioning onto the board failed") == fate
    assert api.calls[0] == ("DELETE", "/v1/devices/00112233aabbccdd")   # the delete first: a factory token can


def test_force_with_a_factory_token_is_refused_naming_the_old_device(verifier, tmp_path):
    """--force decommissions the board's old device; a factory token cannot, so nothing is done."""
    with VirtualBoard("esp32", flash_dir=tmp_path / "flash") as vb:
        port = vb.port
        r = janua("flash", "--port", port, "--board", "esp32")
        assert r.returncode == 0, r.stderr
        r = janua("provision", "--serial", "FORCE-F1", "--port", port, "--transport", "udp", *auth_args(verifier))
        assert r.returncode == 0, r.stderr
        held = _board_device_id(port)
        before = (vb.root / "janua.json").read_bytes()
        r = janua("provision", "--serial", "FORCE-F2", "--port", port, "--force",
                  *role_args(verifier, tmp_path, "factory"))
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert r.stderr.splitlines()[0] == (
            f"janua: the board at {port} already holds device {held}: --force must decommission it, which needs an "
            "operator token (or admin), and this token's role is factory; nothing was registered")
        assert _devices(verifier, "FORCE-F2") == []
        assert (vb.root / "janua.json").read_bytes() == before
        assert [d["status"] for d in _devices(verifier, "FORCE-F1")] == ["provisioning"]


def _args(**kw):
    from argparse import Namespace
    base = dict(server="http://cloud.example:8443", device_server_host=None, udp_port=5685, dtls_port=5684,
                transport="auto", board=None, wifi_ssid=None, tokens=False, edge=None, endpoint=None,
                retry_preferred=None)
    base.update(kw)
    return Namespace(**base)


def test_endpoints_in_order_then_the_server_once():
    from tools.provision import board_config
    pkg = {"device_id": "3f9a0c1b7d2e4a65", "tenant": "t", "master_secret": "5e" * 32}
    cfg = board_config(pkg, _args(endpoint=["edge1", "edge2:6000", "10.0.0.9:6001:8081"], retry_preferred=120))
    assert cfg["endpoints"] == [
        {"host": "edge1", "udp_port": 5685, "http_port": 8080},
        {"host": "edge2", "udp_port": 6000, "http_port": 8080},
        {"host": "10.0.0.9", "udp_port": 6001, "http_port": 8081},
        {"host": "cloud.example", "udp_port": 5685, "http_port": 8443, "dtls_port": 5684}]
    assert cfg["failover"] == {"retry_preferred_s": 120}
    assert cfg["server"] == {"host": "cloud.example", "udp_port": 5685, "http_port": 8443, "dtls_port": 5684}
    # the server listed explicitly keeps its place and is not appended again
    cfg = board_config(pkg, _args(endpoint=["cloud.example:5685:8443", "edge1"]))
    assert [e["host"] for e in cfg["endpoints"]] == ["cloud.example", "edge1"] and "failover" not in cfg
    # without --endpoint: the one server, as before
    assert "endpoints" not in board_config(pkg, _args())


@pytest.mark.parametrize("argv, message", [
    (["--endpoint", "udp://edge1:5685"], "is not HOST[:UDP_PORT[:HTTP_PORT]]"),
    (["--endpoint", "edge1:5685:8080:1"], "is not HOST[:UDP_PORT[:HTTP_PORT]]"),
    (["--endpoint", ":5685"], "is not HOST[:UDP_PORT[:HTTP_PORT]]"),
    (["--endpoint", "edge1:70000"], "'70000' is not a port number"),
    (["--endpoint", "edge1:x"], "'x' is not a port number"),
    (["--retry-preferred", "60"], "--retry-preferred needs --endpoint"),
    (["--endpoint", "edge1", "--transport", "dtls"], "edges serve no DTLS"),
])
def test_bad_endpoint_registers_no_device(verifier, argv, message):
    r = janua("provision", "--serial", "EP-BAD", "--port", "/dev/nonexistent-janua", *argv, *auth_args(verifier))
    assert r.returncode == 1 and r.stderr.startswith("janua: ") and message in r.stderr, r.stderr
    listed = verifier.api("GET", "/v1/devices?limit=100")
    assert "EP-BAD" not in {d["serial_number"] for d in listed.get("devices", listed.get("items", []))}
