"""`janua attest` against a `janua serve --dev` subprocess, through the CLI's entry point: references
from a directory of modules, the policy for the tenant and a group, a request and the status it
shows; -o json is the API's JSON; a wrong device id is one `janua:` line."""

import json

from tools import cli
from tools.demo import Verifier


def test_attest_commands(tmp_path, capsys):
    mods = tmp_path / "janua"
    mods.mkdir()
    (mods / "attest.mpy").write_bytes(b"A" * 10)
    (mods / "binauth.py").write_text("x = 1\n")
    (mods / "README.txt").write_text("not a module\n")
    v = Verifier(tmp_path)
    try:
        srv = ["--server", v.url, "--token-file", str(v.token_file)]
        dev = v.api("POST", "/v1/devices", {"serial_number": "SN-CLI-1"})["device_id"]
        capsys.readouterr()
        assert cli.main(["attest", "ref", "add", *srv, "--model", "esp32", "--micropython", "1.24.1",
                         "--modules-from", str(mods), "-o", "json"]) == 0
        ref = json.loads(capsys.readouterr().out)
        assert ref["modules"] == [
            {"name": "attest.mpy", "size": 10,
             "sha256": "1d65bf29403e4fb1767522a107c827b8884d16640cf0e3b18c4c1dd107e0d49d"},
            {"name": "binauth.py", "size": 6,
             "sha256": "9e26bf369911c45c243c684147b23fc9e1dcfcf257d299a1c632016a6fcd33f4"}]   # README.txt left out
        assert cli.main(["attest", "ref", "list", *srv]) == 0
        assert capsys.readouterr().out.startswith(f"{ref['id']}  model esp32  micropython 1.24.1  build any  modules 2")
        assert cli.main(["attest", "policy", *srv, "--interval", "600", "--quarantine", "off"]) == 0
        assert capsys.readouterr().out == "tenant: interval 600 s, deadline 300 s, quarantine off\n"
        assert cli.main(["attest", "policy", *srv, "--group", "lab", "--deadline", "60"]) == 0
        assert capsys.readouterr().out == "group lab: interval 600 s, deadline 60 s, quarantine off\n"
        assert cli.main(["attest", "request", *srv, dev]) == 0
        assert capsys.readouterr().out.startswith(f"challenge for {dev} until ")
        assert cli.main(["attest", "status", *srv, dev]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"device {dev}: unknown, trust level 50\nchallenge outstanding until "), out
        assert "no attestation yet" in out
        assert cli.main(["attest", "ref", "delete", *srv, ref["id"]]) == 0
        assert cli.main(["attest", "ref", "delete", *srv, ref["id"]]) == 1
        assert capsys.readouterr().err == f"janua: no reference {ref['id']}\n"
        assert cli.main(["attest", "status", *srv, "00" * 8]) == 1
        assert capsys.readouterr().err == "janua: no device 0000000000000000 in this tenant\n"
    finally:
        v.stop()


def test_a_wrong_device_id_is_one_line(capsys):
    assert cli.main(["attest", "status", "--server", "http://127.0.0.1:9", "--token", "x", "xyz"]) == 1
    assert capsys.readouterr().err == "janua: a device id is 16 hex characters, not 'xyz'\n"
