"""`janua policy show|set|get|delete|list` through the real CLI (tools.cli.main in this process) against a real
verifier subprocess (tools/demo.Verifier, `janua serve --dev` on a tmp SQLite file). Expected output is literal."""

import json

import pytest

from tools import cli
from tools.demo import Verifier


@pytest.fixture(scope="module")
def verifier(tmp_path_factory):
    v = Verifier(tmp_path_factory.mktemp("verifier"))
    yield v
    v.stop()


@pytest.fixture
def janua(verifier, capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)

    def run(*args):
        rc = cli.main([*args, "--server", verifier.url, "--token-file", str(verifier.token_file)])
        out, err = capsys.readouterr()
        return rc, out, err
    return run


@pytest.fixture
def device(verifier):
    out = verifier.api("POST", "/v1/devices", {"serial_number": "CLI-1", "model_id": "m-cli",
                                               "metadata": {"group": "g-cli"}})
    yield out["device_id"]
    verifier.api("DELETE", f"/v1/devices/{out['device_id']}")


def test_set_with_fields_then_show_the_device(janua, device, tmp_path):
    rc, out, err = janua("policy", "set", "group", "g-cli", "--set", "auth.protocols=dtls,token",
                         "--set", "access.permissions=0x3", "-o", "json")
    assert rc == 0, err
    assert json.loads(out)["policy"] == {"auth": {"protocols": ["dtls", "token"]}, "access": {"permissions": 3}}
    # --set edits the current document
    rc, out, err = janua("policy", "set", "group", "g-cli", "--set", "update.allowed=false", "-o", "json")
    assert json.loads(out)["policy"] == {"auth": {"protocols": ["dtls", "token"]}, "access": {"permissions": 3},
                                         "update": {"allowed": False}}
    doc = tmp_path / "p.json"
    doc.write_text(json.dumps({"auth": {"min_trust_level": 40}}))
    rc, out, err = janua("policy", "set", "device", device, "--file", str(doc), "-o", "json")
    assert rc == 0 and json.loads(out)["policy"] == {"auth": {"min_trust_level": 40}}
    rc, out, err = janua("policy", "show", device)
    assert rc == 0, err
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert lines[0] == f"device {device}"
    assert lines[1] == "FIELD VALUE SOURCE"
    assert "auth.protocols [\"dtls\",\"token\"] group:g-cli" in lines
    assert "auth.min_trust_level 40 device" in lines
    assert "access.permissions 3 group:g-cli" in lines
    assert "update.allowed False group:g-cli" in lines
    assert "auth.drift_s 300 tenant_policy" in lines
    rc, out, err = janua("policy", "list", "-o", "json")
    assert [(p["scope"], p["key"]) for p in json.loads(out)] == [("group", "g-cli"), ("device", device)]
    assert janua("policy", "delete", "group", "g-cli")[0] == 0
    assert janua("policy", "delete", "device", device)[0] == 0


def test_errors_are_one_line(janua):
    rc, out, err = janua("policy", "set", "tenant", "default", "--set", "auth.protocols=telnet")
    assert rc == 1 and err.startswith("janua: policy.auth.protocols must be a list of at most 32 distinct protocols")
    rc, out, err = janua("policy", "get", "model", "none-such")
    assert rc == 1 and err.splitlines()[0] == "janua: no policy for model 'none-such'"
    rc, out, err = janua("policy", "set", "tenant", "default", "--set", "colour=red")
    assert rc == 1 and err.splitlines()[0] == "janua: --set takes FIELD=VALUE with a known field, not 'colour=red'"
    rc, out, err = janua("policy", "set", "region", "eu", "--set", "update.allowed=true")
    assert rc == 1 and err.splitlines()[0] == "janua: scope must be one of tenant, model, group, device, not 'region'"
