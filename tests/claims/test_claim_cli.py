"""`janua claim batch create|list|show|revoke`, `janua claim list` and `janua claim reset` through the real CLI
(tools.cli.main in this process) against a real verifier subprocess (tools/demo.Verifier, `janua serve --dev` on
a tmp SQLite file, UDP and DTLS on), with claims posted over HTTP as a board would."""

import json
import os
import stat
import urllib.error
import urllib.request

import pytest

from tests.claims.conftest import Board
from tools import cli
from tools.demo import Verifier


@pytest.fixture(scope="module")
def verifier(tmp_path_factory):
    v = Verifier(tmp_path_factory.mktemp("verifier"))
    yield v
    v.stop()


@pytest.fixture
def janua(verifier, capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.chdir(tmp_path)

    def run(*args):
        rc = cli.main([*args, "--server", verifier.url, "--token-file", str(verifier.token_file)])
        out, err = capsys.readouterr()
        return rc, out, err
    return run


def post_claim(verifier, data):
    req = urllib.request.Request(verifier.url + "/v1/claim", method="POST", data=data,
                                 headers={"Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_create_writes_the_secret_to_a_new_0600_file_and_prints_it_nowhere(janua, verifier, tmp_path):
    rc, out, err = janua("claim", "batch", "create", "line 1", "--pattern", "CLI-*", "--max-count", "3",
                         "--device-json", '{"model_id": "pico-w", "transport": "udp"}', "-o", "json")
    assert rc == 0, err
    batch = json.loads(out)
    path = tmp_path / f"claim-{batch['batch_id']}.secret"
    assert batch["secret_file"] == path.name
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    secret = json.loads(path.read_text())
    assert secret["batch_id"] == batch["batch_id"] and len(secret["batch_secret"]) == 64
    assert secret["batch_secret"] not in out + err and "batch_secret" not in batch
    # the file's secret is the one the verifier claims against: a board made from it gets its identity
    board = Board(batch["batch_id"], bytes.fromhex(secret["batch_secret"]), "CLI-1")
    nonce, req = board.request()
    status, answer = post_claim(verifier, req)
    assert status == 200
    device_id, _, config = board.open(nonce, answer)
    assert config["server"] == {"host": "127.0.0.1", "udp_port": verifier.udp_port,
                                "http_port": verifier.http_port, "dtls_port": verifier.dtls_port}
    assert config["transport"] == "udp"
    rc, out, err = janua("claim", "list", batch["batch_id"], "-o", "json")
    assert rc == 0 and [(c["serial"], c["device_id"]) for c in json.loads(out)] == [("CLI-1", device_id)]
    rc, out, err = janua("claim", "list", batch["batch_id"])
    assert rc == 0 and out.splitlines()[0].split() == ["SERIAL", "DEVICE", "CLAIMED", "RESUMED"]
    assert out.splitlines()[1].split()[:2] == ["CLI-1", device_id] and out.splitlines()[1].split()[-1] == "0"
    rc, out, err = janua("claim", "reset", batch["batch_id"], "CLI-1")
    assert rc == 0 and f"device {device_id} is decommissioned" in err
    assert verifier.api("GET", f"/v1/devices/{device_id}")["status"] == "decommissioned"


def test_an_existing_secret_file_is_never_written_over_and_no_batch_is_made(janua, tmp_path):
    (tmp_path / "taken.secret").write_text("keep me\n")
    rc, out, err = janua("claim", "batch", "create", "line 2", "--serials", "A,B", "--max-count", "2",
                         "--secret-file", "taken.secret")
    assert rc == 1 and "taken.secret exists" in err
    assert (tmp_path / "taken.secret").read_text() == "keep me\n"
    rc, out, _ = janua("claim", "batch", "list", "-o", "json")
    assert "line 2" not in [b["name"] for b in json.loads(out)]


def test_list_show_revoke(janua, tmp_path):
    rc, out, err = janua("claim", "batch", "create", "line 3", "--serials", "S-1,S-2", "--max-count", "2",
                         "--secret-file", "l3.secret")
    assert rc == 0, err
    assert "status:" in out and "0 of 2 (2 left)" in out and (tmp_path / "l3.secret").exists()
    bid = json.loads((tmp_path / "l3.secret").read_text())["batch_id"]
    rc, out, _ = janua("claim", "batch", "list")
    row = [ln for ln in out.splitlines() if ln.startswith(bid)]
    assert row and row[0].split()[1:] == ["line", "3", "active", "0", "2", "2", "listed"]
    rc, out, _ = janua("claim", "batch", "revoke", bid)
    assert rc == 0
    rc, out, _ = janua("claim", "batch", "show", bid, "-o", "json")
    assert rc == 0 and json.loads(out)["status"] == "revoked"
    rc, out, err = janua("claim", "batch", "revoke", bid)
    assert rc == 1 and "revoked already" in err


@pytest.mark.parametrize("args, message", [
    (("claim", "batch", "show", "nothex"), "16 hex characters"),
    (("claim", "batch", "show", "0000000000000000"), "no claim batch 0000000000000000 in this tenant"),
    (("claim", "reset", "0000000000000000", "X"), "no claim of 'X' in batch 0000000000000000"),
    (("claim", "batch", "create", "x", "--pattern", "A B", "--max-count", "1", "--secret-file", "n.secret"),
     "serial_pattern must be"),
])
def test_errors_are_one_line(janua, args, message):
    rc, out, err = janua(*args)
    assert rc == 1 and message in err and err.startswith("janua: ")
