"""`janua serve --config FILE` (TOML), command-line options over the file, `--print-config`, and the help's
defaults. A wrong file is a one-line error before anything starts."""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def janua(*a, timeout=60):
    return subprocess.run([sys.executable, "-m", "tools", *a], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


def test_file_then_command_line_then_defaults(tmp_path):
    f = tmp_path / "janua.toml"
    f.write_text('http_port = 9000\nudp-port = -1\ntrusted_proxy = ["10.0.0.5", "10.1.0.0/16"]\n'
                 'insecure_http = true\nlog_level = "WARNING"\n')
    r = janua("serve", "--config", str(f), "--http-port", "9100", "--print-config")
    assert r.returncode == 0, r.stderr
    got = tomllib.loads(r.stdout)
    assert got["http_port"] == 9100                      # the command line wins
    assert got["udp_port"] == -1 and got["log_level"] == "WARNING" and got["insecure_http"] is True
    assert got["trusted_proxy"] == ["10.0.0.5", "10.1.0.0/16"]
    assert got["http_host"] == "127.0.0.1" and got["dtls_port"] == 5684     # defaults
    assert "# kek_file (not set)" in r.stdout and "kek" not in "".join(got)   # no key, only its absence


def test_printed_config_is_a_config_file(tmp_path):
    first = janua("serve", "--http-port", "9200", "--dev", "--print-config")
    f = tmp_path / "again.toml"
    f.write_text(first.stdout)
    again = janua("serve", "--config", str(f), "--print-config")
    assert again.returncode == 0, again.stderr
    assert tomllib.loads(again.stdout) == tomllib.loads(first.stdout)


def test_bad_files_are_one_line_errors(tmp_path):
    cases = {"unknown.toml": ("htp_port = 1\n", "--config {}: unknown setting 'htp_port'"),
             "type.toml": ('http_port = "8080"\n', "--config {}: http_port must be an integer"),
             "flag.toml": ("dev = 1\n", "--config {}: dev must be true or false"),
             "choice.toml": ('log_level = "LOUD"\n', "--config {}: log_level must be one of DEBUG, INFO, WARNING, ERROR"),
             "list.toml": ('trusted_proxy = "10.0.0.5"\n', "--config {}: trusted_proxy must be a list of strings"),
             "syntax.toml": ("http_port = = 1\n", "--config {} is not valid TOML")}
    for name, (text, msg) in cases.items():
        f = tmp_path / name
        f.write_text(text)
        r = janua("serve", "--config", str(f), "--print-config")
        assert r.returncode == 1, name
        assert r.stderr.startswith("janua: " + msg.format(f)), r.stderr
    r = janua("serve", "--config", str(tmp_path / "absent.toml"))
    assert r.returncode == 1 and "cannot read --config" in r.stderr


def test_a_verifier_runs_on_the_files_settings(tmp_path):
    f = tmp_path / "janua.toml"
    f.write_text(f'db = "{tmp_path / "x.db"}"\ndev = true\nhttp_port = 0\nudp_port = -1\ndtls_port = -1\n'
                 'log_level = "WARNING"\n')
    p = subprocess.Popen([sys.executable, "-m", "tools", "serve", "--config", str(f)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = ""
        while not line.startswith("janua serve: http="):
            line = p.stdout.readline()
            assert line, p.stderr.read()
        assert line.rstrip().endswith("udp=off dtls=off"), line
        assert (tmp_path / "x.db").exists()
    finally:
        p.terminate()
        p.wait(10)


def test_help_shows_the_defaults():
    out = janua("serve", "--help").stdout
    assert "HTTP API port; 0 picks a free port (default: 8080)" in " ".join(out.split())
    assert "(default: INFO)" in out


def test_auth_cache_devices_setting(tmp_path):
    """The binary-auth device cache bound (docs/operations.md "Scaling"): 200,000 unless set, from the file
    or the command line; below 1 is a one-line error."""
    assert "auth_cache_devices = 200000" in janua("serve", "--print-config").stdout.splitlines()
    f = tmp_path / "janua.toml"
    f.write_text("auth_cache_devices = 5000\n")
    assert "auth_cache_devices = 5000" in janua("serve", "--config", str(f), "--print-config").stdout.splitlines()
    help_text = " ".join(janua("serve", "--help").stdout.split())
    assert "next packet (default: 200000)" in help_text
    r = janua("serve", "--auth-cache-devices", "0", "--db", str(tmp_path / "x.db"), "--dev")
    assert r.returncode == 1 and r.stderr == "janua: --auth-cache-devices must be at least 1\n", r.stderr


def test_coap_claim_port_is_off_by_default_and_a_setting(tmp_path):
    assert tomllib.loads(janua("serve", "--print-config").stdout)["coap_claim_port"] == -1
    f = tmp_path / "janua.toml"
    f.write_text('coap_claim_port = 5683\ncoap_claim_host = "0.0.0.0"\n')
    got = tomllib.loads(janua("serve", "--config", str(f), "--print-config").stdout)
    assert (got["coap_claim_port"], got["coap_claim_host"]) == (5683, "0.0.0.0")
