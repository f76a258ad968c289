"""`janua device list|show|suspend|resume|decommission|quarantine|release`, `janua audit` and `janua ota list`
through the real CLI (tools.cli.main in this process, and a subprocess where a terminal matters) against a
real verifier subprocess (tools/demo.Verifier, `janua serve --dev` on a tmp SQLite file)."""

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tools import cli
from tools.demo import Verifier
from verifier import keys
from verifier.binauth.core import encode_request

ROOT = Path(__file__).resolve().parents[2]
WALK = 250          # devices of the group "walk"


@pytest.fixture(scope="module")
def verifier(tmp_path_factory):
    v = Verifier(tmp_path_factory.mktemp("verifier"))
    rows = [{"serial_number": f"W-{i:03d}", "model_id": "m1", "metadata": {"group": "walk"}} for i in range(WALK)]
    out = v.api("POST", "/v1/devices/bulk", {"devices": rows})
    assert out["summary"]["created"] == WALK
    yield v
    v.stop()


@pytest.fixture
def janua(verifier, capsys, monkeypatch):
    """Run `janua ARGS --server URL --token-file F` in this process: (exit code, stdout, stderr)."""
    monkeypatch.delenv("COLUMNS", raising=False)

    def run(*args, token_file=None):
        rc = cli.main([*args, "--server", verifier.url, "--token-file", str(token_file or verifier.token_file)])
        out, err = capsys.readouterr()
        return rc, out, err
    return run


def provision(verifier, serial, **metadata):
    """A new device: (id, master secret hex)."""
    out = verifier.api("POST", "/v1/devices", {"serial_number": serial, "model_id": "m1", "metadata": metadata})
    return out["device_id"], out["master_secret"]


def authenticate(verifier, dev, master, ts=None):
    key = keys.derive_key(bytes.fromhex(master), keys.LABEL_BINAUTH)
    req = urllib.request.Request(verifier.url + "/v1/binauth", method="POST",
                                 data=encode_request(key, bytes.fromhex(dev), int(ts or time.time())),
                                 headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read()[0]


def token_file(verifier, tmp_path, role, tenant="default"):
    r = subprocess.run([sys.executable, "-m", "tools", "tenant", "token", tenant, "--db", str(verifier.db),
                        "--role", role, "--label", "test"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    f = tmp_path / f"{tenant}-{role}.token"
    f.write_text(r.stdout.strip() + "\n")
    f.chmod(0o600)
    return f


# -- list -------------------------------------------------------------------------------------

def test_all_follows_the_cursor_and_returns_every_device_once(janua):
    rc, out, err = janua("device", "list", "--group", "walk", "--limit", "7", "--all", "-o", "json")
    assert rc == 0, err
    doc = json.loads(out)
    serials = [d["serial_number"] for d in doc["devices"]]
    assert len(serials) == 250 and len(set(serials)) == 250 and doc["next_cursor"] is None
    assert sorted(serials) == [f"W-{i:03d}" for i in range(250)]
    ids = [d["device_id"] for d in doc["devices"]]
    assert ids == sorted(ids)                                   # the API's order: by device id
    # 36 pages of 7: a note on stderr at pages 10, 20 and 30
    assert err.splitlines() == ["janua: 70 devices so far, going on...", "janua: 140 devices so far, going on...",
                                "janua: 210 devices so far, going on..."]


def test_pages_by_hand_with_the_cursor_meet_the_same_devices(janua, verifier):
    seen, cursor = [], None
    for _ in range(3):
        rc, out, err = janua("device", "list", "--group", "walk", "--limit", "100", "-o", "json",
                             *(["--cursor", cursor] if cursor else []))
        assert rc == 0, err
        page = json.loads(out)
        seen += [d["device_id"] for d in page["devices"]]
        cursor = page["next_cursor"]
    assert [len(seen), len(set(seen)), cursor] == [250, 250, None]
    # -o json is the API's page as it is
    first = verifier.api("GET", "/v1/devices?group=walk&limit=100")
    rc, out, _ = janua("device", "list", "--group", "walk", "--limit", "100", "-o", "json")
    assert json.loads(out) == first


def test_table_and_the_next_cursor_note(janua, verifier):
    rc, out, err = janua("device", "list", "--group", "walk", "--limit", "2")
    first = verifier.api("GET", "/v1/devices?group=walk&limit=2")["devices"]
    assert rc == 0 and out.splitlines() == [
        "ID                SERIAL  STATUS        FIRMWARE  GROUP  LAST AUTH",
        f"{first[0]['device_id']}  {first[0]['serial_number']}   provisioning  -         walk   never",
        f"{first[1]['device_id']}  {first[1]['serial_number']}   provisioning  -         walk   never"]
    assert err == f"janua: more devices: --cursor {first[1]['device_id']} (or --all)\n"


def test_filters_of_the_api_and_of_the_cli(janua, verifier):
    a, ma = provision(verifier, "FLT-A1", group="flt", firmware_version="1.2.0", tags=["roof"])
    b, _ = provision(verifier, "FLT-B2", group="flt", firmware_version="1.3.0")
    c, mc = provision(verifier, "FLT-C3", group="flt", firmware_version="1.3.0", tags=["roof"])
    assert authenticate(verifier, a, ma) == 0 and authenticate(verifier, c, mc) == 0   # both now active
    verifier.api("POST", f"/v1/devices/{c}/lifecycle", {"action": "suspend"})

    def serials(*args):
        rc, out, err = janua("device", "list", *args, "-o", "json")
        assert rc == 0, err
        return [d["serial_number"] for d in json.loads(out)["devices"]]
    assert sorted(serials("--group", "flt")) == ["FLT-A1", "FLT-B2", "FLT-C3"]
    assert sorted(serials("--tag", "roof")) == ["FLT-A1", "FLT-C3"]
    assert serials("--group", "flt", "--status", "suspended") == ["FLT-C3"]
    assert serials("--group", "flt", "--status", "active") == ["FLT-A1"]
    assert sorted(serials("--firmware", "1.3.0")) == ["FLT-B2", "FLT-C3"]
    assert sorted(serials("--group", "flt", "--online")) == ["FLT-A1", "FLT-C3"]
    assert serials("--group", "flt", "--offline") == ["FLT-B2"]
    assert serials("--search", "flt-b") == ["FLT-B2"]
    assert serials("--search", c[:10]) == ["FLT-C3"]                   # the start of the id
    assert serials("--search", "nothing-like-it") == []
    rc, out, _ = janua("device", "list", "--search", "nothing-like-it")
    assert out == "no devices (provision some: `janua provision --serial SN --port P` or `--bulk FILE`)\n"


def test_filtered_here_stops_at_limit_with_a_cursor_to_go_on(janua):
    rc, out, err = janua("device", "list", "--search", "W-1", "--limit", "60", "-o", "json")
    page = json.loads(out)
    assert len(page["devices"]) == 60 and page["next_cursor"] == page["devices"][-1]["device_id"]
    rc, out, err = janua("device", "list", "--search", "W-1", "--limit", "60", "-o", "json",
                         "--cursor", page["next_cursor"])
    rest = json.loads(out)
    got = [d["serial_number"] for d in page["devices"] + rest["devices"]]
    assert sorted(got) == [f"W-{i}" for i in range(100, 200)] and rest["next_cursor"] is None


def test_bad_limit_and_cursor_are_one_line(janua):
    assert janua("device", "list", "--limit", "0")[2] == "janua: --limit 0: 1 to 1000\n"
    assert janua("device", "list", "--cursor", "zz")[2] == "janua: a device id is 16 hex characters, not 'zz'\n"


# -- show -------------------------------------------------------------------------------------

def test_show_json_and_text(janua, verifier):
    dev, master = provision(verifier, "SHOW-1", group="lab", firmware_version="2.0.1", tags=["x"])
    assert authenticate(verifier, dev, master) == 0
    verifier.api("POST", f"/v1/devices/{dev}/certificate", {})
    rc, out, err = janua("device", "show", dev, "-o", "json")
    assert rc == 0, err
    doc = json.loads(out)
    assert sorted(doc) == ["attestation", "certificates", "device", "health", "last_authentications"]
    assert doc["device"] == verifier.api("GET", f"/v1/devices/{dev}")
    assert doc["device"]["status"] == "active" and doc["device"]["metadata"]["firmware_version"] == "2.0.1"
    assert [c["key_type"] for c in doc["certificates"]["certificates"]] == ["p256"]
    (auth,) = doc["last_authentications"]
    assert (auth["kind"], auth["action"], auth["transport"], auth["result"], auth["device_id"]) == (
        "auth", "binauth", "http", "OK", dev)
    assert doc["attestation"]["attestation_status"] == "unknown" and doc["health"]["score"] is None
    assert master not in out and "master_secret" not in out and "sealed" not in out

    rc, out, err = janua("device", "show", dev)
    lines = out.splitlines()
    assert rc == 0 and lines[0] == f"device:         {dev}" and lines[1] == "serial:         SHOW-1"
    assert "firmware:       2.0.1" in lines and "group:          lab" in lines and "tags:           x" in lines
    assert "credential:     symmetric, present" in lines and "health:         no report yet" in lines
    assert [x.split(" (")[0][:16] for x in lines if x.startswith("status:")] == ["status:         "]
    serial = doc["certificates"]["certificates"][0]["serial"]
    assert [x for x in lines if x.startswith("certificate:")][0].startswith(
        f"certificate:    p256 serial {serial}, valid until ")
    assert [x for x in lines if x.startswith("authentication:")][0].endswith(
        "(just now) http/binauth from 127.0.0.1 OK")
    assert master not in out


def test_show_unknown_and_foreign_device(janua, verifier, tmp_path):
    rc, out, err = janua("device", "show", "00000000000000aa")
    assert rc == 1 and err.splitlines()[0] == "janua: no device 00000000000000aa in this tenant"
    r = subprocess.run([sys.executable, "-m", "tools", "tenant", "create", "other", "--db", str(verifier.db)],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    other = tmp_path / "other.token"
    other.write_text(r.stdout.strip() + "\n")
    dev, _ = provision(verifier, "MINE-1")
    rc, out, err = janua("device", "show", dev, token_file=other)
    assert rc == 1 and err.splitlines()[0] == f"janua: no device {dev} in this tenant"


# -- lifecycle --------------------------------------------------------------------------------

def test_each_lifecycle_action_and_its_refusal(janua, verifier):
    dev, _ = provision(verifier, "LC-1")
    steps = [("suspend", 1, "janua: cannot suspend a device that is provisioning (allowed: activate, decommission)"),
             ("resume", 1, "janua: cannot resume a device that is provisioning (allowed: activate, decommission)"),
             ("activate", 0, "device {dev} (LC-1): active"),
             ("activate", 1, "janua: cannot activate a device that is active (allowed: decommission, suspend)"),
             ("suspend", 0, "device {dev} (LC-1): suspended"),
             ("suspend", 1, "janua: cannot suspend a device that is suspended (allowed: decommission, resume)"),
             ("resume", 0, "device {dev} (LC-1): active"),
             ("release", 1, "janua: cannot release: the device is not quarantined"),
             ("quarantine", 0, "device {dev} (LC-1): active, quarantined"),
             ("quarantine", 1, "janua: cannot quarantine: the device is already quarantined"),
             ("release", 0, "device {dev} (LC-1): active")]
    for action, want_rc, want in steps:
        rc, out, err = janua("device", action, dev, "--reason", f"test {action}")
        assert (rc, (out if rc == 0 else err).splitlines()[0]) == (want_rc, want.format(dev=dev)), action
    rc, out, err = janua("device", "decommission", dev, "--yes", "-o", "json")
    assert rc == 0 and json.loads(out)["status"] == "decommissioned"
    rc, out, err = janua("device", "resume", dev)
    assert err == "janua: cannot resume a device that is decommissioned (no further transitions)\n"
    audit = verifier.api("GET", f"/v1/audit?device_id={dev}")["entries"]
    assert [(e["action"], e["result"], e["reason"]) for e in audit[:3]] == [
        ("device.resume", "error", "cannot resume a device that is decommissioned (no further transitions)"),
        ("device.decommission", "ok", "active -> decommissioned"), ("device.release", "ok", "test release")]


def test_lifecycle_of_an_unknown_device(janua):
    rc, out, err = janua("device", "suspend", "00000000000000bb")
    assert err.splitlines()[0] == "janua: no device 00000000000000bb in this tenant"


def test_decommission_asks_first(janua, verifier, monkeypatch):
    dev, _ = provision(verifier, "DEC-1")
    # no terminal to ask on: refused, the device untouched
    r = subprocess.run([sys.executable, "-m", "tools", "device", "decommission", dev, "--server", verifier.url,
                        "--token-file", str(verifier.token_file)], capture_output=True, text=True, timeout=60,
                       cwd=ROOT, stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and r.stderr == (f"janua: decommissioning {dev} cannot be undone\n"
                                              "janua: hint: pass --yes to do it without asking\n")
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    asked = []
    monkeypatch.setattr("builtins.input", lambda q: asked.append(q) or "no")
    rc, out, err = janua("device", "decommission", dev)
    assert (rc, err) == (1, "janua: not decommissioned\n")
    assert asked == [f"decommission {dev} (serial DEC-1, provisioning)? It cannot be undone. Type yes: "]
    assert verifier.api("GET", f"/v1/devices/{dev}")["status"] == "provisioning"
    monkeypatch.setattr("builtins.input", lambda q: "yes")
    rc, out, err = janua("device", "decommission", dev, "--reason", "scrapped")
    assert (rc, out) == (0, f"device {dev} (DEC-1): decommissioned\n")


def test_viewer_token_lists_but_cannot_suspend(janua, verifier, tmp_path):
    dev, master = provision(verifier, "VIEW-1")
    viewer = token_file(verifier, tmp_path, "viewer")
    rc, out, err = janua("device", "show", dev, token_file=viewer)
    assert rc == 0
    rc, out, err = janua("device", "suspend", dev, token_file=viewer)
    assert rc == 1 and err == ("janua: this route needs a token with role operator (or admin); this token's role "
                               "is viewer\njanua: hint: ask for a token of that role "
                               "(`janua tenant token NAME --role ROLE`)\n")
    assert verifier.api("GET", f"/v1/devices/{dev}")["status"] == "provisioning"


# -- audit ------------------------------------------------------------------------------------

def test_audit_json_field_by_field(janua, verifier):
    dev, _ = provision(verifier, "AUD-1")
    verifier.api("POST", f"/v1/devices/{dev}/lifecycle", {"action": "activate"})
    verifier.api("POST", f"/v1/devices/{dev}/lifecycle", {"action": "suspend", "reason": "stolen"})
    rc, out, err = janua("audit", "--device", dev, "-o", "json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["next_cursor"] is None and len(doc["entries"]) == 3
    newest = doc["entries"][0]
    tenant_id = verifier.api("GET", "/v1/tenant")["id"]
    assert sorted(newest) == ["action", "actor", "detail", "device_id", "kind", "reason", "result", "seq",
                              "source", "tenant_id", "transport", "ts"]
    assert newest["action"] == "device.suspend" and newest["kind"] == "admin" and newest["result"] == "ok"
    assert newest["reason"] == "active -> suspended: stolen" and newest["detail"] is None
    assert newest["device_id"] == dev and newest["tenant_id"] == tenant_id
    assert newest["actor"].startswith("tok_") and newest["transport"] is None and newest["source"] is None
    assert abs(newest["ts"] - time.time()) < 60 and isinstance(newest["seq"], int)
    assert [e["action"] for e in doc["entries"]] == ["device.suspend", "device.activate", "device.provision"]
    assert doc["entries"][0]["seq"] > doc["entries"][1]["seq"] > doc["entries"][2]["seq"]


def test_audit_cursor_and_all(janua, verifier):
    dev, _ = provision(verifier, "AUD-2")
    for action in ("activate", "suspend", "resume", "suspend", "resume"):
        verifier.api("POST", f"/v1/devices/{dev}/lifecycle", {"action": action})
    rc, out, err = janua("audit", "--device", dev, "--limit", "4", "-o", "json")
    first = json.loads(out)
    assert len(first["entries"]) == 4 and first["next_cursor"] == str(first["entries"][-1]["seq"])
    rc, out, err = janua("audit", "--device", dev, "--limit", "4", "--cursor", first["next_cursor"], "-o", "json")
    second = json.loads(out)
    assert [e["action"] for e in first["entries"] + second["entries"]] == [
        "device.resume", "device.suspend", "device.resume", "device.suspend", "device.activate", "device.provision"]
    rc, out, err = janua("audit", "--device", dev, "--limit", "2", "--all", "-o", "json")
    assert json.loads(out) == {"entries": first["entries"] + second["entries"], "next_cursor": None}
    rc, out, err = janua("audit", "--device", dev, "--limit", "1")
    lines = out.splitlines()
    assert lines[0].split() == ["TIME", "KIND", "ACTION", "DEVICE", "ACTOR", "VIA", "RESULT", "REASON"]
    assert " (just now)  admin  device.resume  " + dev in lines[1] and lines[1].endswith("ok      suspended -> active")
    assert err == f"janua: older entries: --cursor {first['entries'][0]['seq']} (or --all)\n"


def test_audit_bad_cursor_is_the_apis_reason(janua):
    rc, out, err = janua("audit", "--cursor", "abc")
    assert rc == 1 and err.startswith("janua: cursor must be")


# -- ota list ---------------------------------------------------------------------------------

def test_ota_list_with_no_releases(janua):
    assert janua("ota", "list")[1] == "no releases (publish one: `janua ota publish BUNDLE`)\n"
    rc, out, err = janua("ota", "list", "-o", "json")
    assert json.loads(out) == {"releases": [], "rollouts": []}


def test_narrow_terminal_cuts_the_table(janua, monkeypatch):
    rc, out, err = janua("device", "list", "--group", "walk", "--limit", "3")
    assert [len(x) for x in out.splitlines()] == [66, 62, 62, 62]        # no terminal: not cut
    monkeypatch.setenv("COLUMNS", "60")     # the floors: 16 for the id, 8 or the header for the others
    rc, out, err = janua("device", "list", "--group", "walk", "--limit", "3")
    lines = out.splitlines()
    assert lines[0] == "ID                SERIAL  STATUS    FIRMWARE  GROUP  LAST AUTH"
    assert all(x[18:].startswith("W-") and x[26:].startswith("provisi…  -         walk   never") for x in lines[1:])


def test_ota_list_releases_with_their_rollouts(janua, verifier, tmp_path):
    from tools import ota, ota_release
    from tools.api import API
    api = API(verifier.url, token_file=str(verifier.token_file))
    key, pub, _ = ota.keygen(tmp_path, "release")
    ota_release.trust_key(api, pub, "release")
    rels = []
    for version, counter in (("1.0.0", 1), ("1.1.0", 2)):
        app = tmp_path / f"app-{version}"
        app.mkdir()
        (app / "main.py").write_text(f"print({version!r})\n")
        bundle = tmp_path / f"rel-{version}"
        ota.build_bundle(app, bundle, version, counter, boards=["esp32"], compile_py=False)
        ota.sign_bundle(bundle, key)
        rels.append(ota_release.publish(api, bundle))
    ro = ota_release.rollout(api, rels[1]["id"], True, "10:24,100")
    rc, out, err = janua("ota", "list", "-o", "json")
    doc = json.loads(out)
    assert [r["id"] for r in doc["releases"]] == [rels[1]["id"], rels[0]["id"]]          # newest first
    assert [(r["id"], r["release_id"], r["state"], r["phase"]) for r in doc["rollouts"]] == [
        (ro["id"], rels[1]["id"], "active", 1)]
    assert doc == {"releases": api.call("GET", "/v1/releases")["releases"],
                   "rollouts": api.call("GET", "/v1/rollouts")["rollouts"]}
    rc, out, err = janua("ota", "list")
    rows = [re.split(r"  +", x) for x in out.splitlines()]        # columns are two or more spaces apart
    published = [r[4] for r in rows[1:]]
    assert rows == [
        ["RELEASE", "KIND", "VERSION", "COUNTER", "PUBLISHED", "ROLLOUT", "STATE", "PHASE", "REPORTS",
         "FAILURE RATE"],
        [rels[1]["id"], "app", "1.1.0", "2", published[0], ro["id"], "active", "1/2 (10%)",
         "0 confirmed, 0 failed", "0.0%"],
        [rels[0]["id"], "app", "1.0.0", "1", published[1], "-", "no rollout", "-", "-", "-"]]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d \(just now\)", p) for p in published)
