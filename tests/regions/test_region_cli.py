"""`janua region` and `janua provision --region` through the real CLI against a real verifier subprocess
(tools/demo.Verifier) on a tmp database; with --port, a virtual board whose janua.json must then hold the region's
endpoints (docs/regions.md)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

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


def auth(v):
    return ["--server", v.url, "--token-file", str(v.token_file)]


EU_ARGS = ["--auth-host", "auth.eu.example.com", "--udp-port", "7685", "--http-port", "7080", "--dtls-port", "7684",
           "--mqtt-host", "mqtt.eu.example.com", "--mqtt-port", "9883", "--update", "https://ota.eu.example.com/fw"]
EU_DOC = {"name": "eu-cli", "auth": {"host": "auth.eu.example.com", "udp_port": 7685, "http_port": 7080,
                                     "dtls_port": 7684},
          "mqtt": {"host": "mqtt.eu.example.com", "port": 9883}, "update": "https://ota.eu.example.com/fw",
          "default": False}


def _doc(r):
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    return {k: v for k, v in out.items() if k not in ("created", "updated")}


def test_set_show_list_and_delete(verifier):
    assert _doc(janua("region", "set", "eu-cli", *EU_ARGS, "-o", "json", *auth(verifier))) == EU_DOC
    assert _doc(janua("region", "show", "eu-cli", "-o", "json", *auth(verifier))) == EU_DOC
    r = janua("region", "show", "eu-cli", *auth(verifier))
    assert r.stdout.splitlines() == ["eu-cli", "  auth   auth.eu.example.com udp 7685 http 7080 dtls 7684",
                                     "  mqtt   mqtt.eu.example.com:9883", "  update https://ota.eu.example.com/fw"]
    r = janua("region", "list", "-o", "json", *auth(verifier))
    assert "eu-cli" in [x["name"] for x in json.loads(r.stdout)]
    r = janua("region", "delete", "eu-cli", *auth(verifier))
    assert r.returncode == 0 and r.stdout.strip() == "janua: deleted region eu-cli"
    r = janua("region", "show", "eu-cli", *auth(verifier))
    assert r.returncode == 1 and r.stderr.splitlines()[0] == "janua: no region eu-cli in this tenant"


def test_set_from_a_file_takes_its_name(verifier, tmp_path):
    f = tmp_path / "region.json"
    f.write_text(json.dumps({"name": "file-1", "auth": {"host": "10.9.8.7", "udp_port": 1, "http_port": 2,
                                                        "dtls_port": 3}, "default": True}))
    assert _doc(janua("region", "set", "--file", str(f), "-o", "json", *auth(verifier))) == {
        "name": "file-1", "auth": {"host": "10.9.8.7", "udp_port": 1, "http_port": 2, "dtls_port": 3}, "default": True}
    r = janua("region", "set", "other", "--file", str(f), *auth(verifier))
    assert r.returncode == 1 and r.stderr.splitlines()[0] == f"janua: {f} names region 'file-1', not 'other'"
    janua("region", "set", "file-1", "--auth-host", "10.9.8.7", *auth(verifier))     # no longer the default


def test_the_verifiers_refusal_is_the_message(verifier):
    r = janua("region", "set", "clash", "--auth-host", "h.example", "--udp-port", "5000", "--dtls-port", "5000",
              *auth(verifier))
    assert r.returncode == 1
    assert r.stderr.splitlines()[0] == ("janua: auth.udp_port and auth.dtls_port are both 5000: binary auth and DTLS "
                                        "need a UDP port each")
    r = janua("region", "set", "bad name", "--auth-host", "h.example", *auth(verifier))
    assert r.returncode == 1 and r.stderr.startswith("janua: a region name is 1 to 64")


def _devices(verifier, serial):
    return [d for d in verifier.api("GET", "/v1/devices?limit=1000")["devices"] if d["serial_number"] == serial]


def test_provision_with_an_unknown_region_registers_nothing(verifier):
    r = janua("provision", "--serial", "NOREGION-1", "--region", "atlantis", *auth(verifier))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[0].startswith("janua: ") and "'atlantis' is not one of this tenant's regions" in r.stderr
    assert _devices(verifier, "NOREGION-1") == []


def test_provision_onto_a_board_writes_the_regions_endpoints(verifier, tmp_path):
    assert janua("region", "set", "eu-board", *EU_ARGS, "--coap-host", "coap.eu.example.com", *auth(verifier)
                 ).returncode == 0
    with VirtualBoard("esp32", flash_dir=tmp_path / "flash") as vb:
        r = janua("provision", "--serial", "REGION-BOARD-1", "--region", "eu-board", "--port", vb.port,
                  *auth(verifier))
        assert r.returncode == 0, r.stderr
    cfg = json.loads((vb.root / "janua.json").read_text())   # on the board's LittleFS
    assert cfg["server"] == {"host": "auth.eu.example.com", "udp_port": 7685, "http_port": 7080, "dtls_port": 7684}
    assert cfg["mqtt"] == {"host": "mqtt.eu.example.com", "port": 9883}
    assert cfg["coap"] == {"host": "coap.eu.example.com", "port": 5683}
    assert (cfg["region"], cfg["update"]) == ("eu-board", "https://ota.eu.example.com/fw")
    dev, = _devices(verifier, "REGION-BOARD-1")
    assert cfg["device_id"] == dev["device_id"] and dev["metadata"]["region"] == "eu-board"
    r = janua("region", "delete", "eu-board", *auth(verifier))
    assert r.returncode == 1 and "has 1 device(s)" in r.stderr


def test_provision_onto_a_board_without_a_region_keeps_the_servers_address(verifier, tmp_path):
    with VirtualBoard("esp32", flash_dir=tmp_path / "flash") as vb:
        r = janua("provision", "--serial", "NOREGION-BOARD-1", "--port", vb.port, "--udp-port", "5999",
                  *auth(verifier))
        assert r.returncode == 0, r.stderr
    cfg = json.loads((vb.root / "janua.json").read_text())   # on the board's LittleFS
    assert cfg["server"] == {"host": "127.0.0.1", "udp_port": 5999, "http_port": verifier.http_port,
                             "dtls_port": 5684}
    assert "region" not in cfg and "mqtt" not in cfg


def test_bulk_region_column_puts_the_config_in_the_manifest(verifier, tmp_path):
    assert janua("region", "set", "bulk-r", "--auth-host", "b.example.com", *auth(verifier)).returncode == 0
    csv = tmp_path / "d.csv"
    csv.write_text("serial_number,region\nBR-1,bulk-r\nBR-2,nowhere\n")
    r = janua("provision", "--bulk", str(csv), "--no-progress", *auth(verifier))
    assert "2 devices: 1 provisioned, 1 failed" in r.stdout
    rows = [json.loads(x) for x in Path(str(csv) + ".manifest.jsonl").read_text().splitlines()]
    assert [(x["serial_number"], x["config"]) for x in rows] == [
        ("BR-1", {"region": "bulk-r", "server": {"host": "b.example.com", "udp_port": 5685, "http_port": 8080,
                                                 "dtls_port": 5684}})]
