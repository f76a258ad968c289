"""The deployment files in deploy/ (docs/operations.md): the systemd unit passes `systemd-analyze verify` (its
ExecStart pointed at this checkout's janua), and the example settings are a valid `janua serve --config` file.
The Containerfile is not built here (no container engine runs on this machine)."""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_systemd_unit_verifies(tmp_path):
    unit = (ROOT / "deploy" / "janua.service").read_text()
    assert "ExecStart=/opt/janua/venv/bin/janua serve --config /etc/janua/janua.toml" in unit
    here = Path(sys.executable).parent / "janua"
    (tmp_path / "janua.service").write_text(unit.replace("/opt/janua/venv/bin/janua", str(here)))
    r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "janua.service")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Unknown" not in r.stderr and "ignoring" not in r.stderr.lower(), r.stderr


def test_example_settings_are_a_valid_config_file():
    r = subprocess.run([sys.executable, "-m", "tools", "serve", "--config", str(ROOT / "deploy" / "janua.toml"),
                        "--print-config"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    got = tomllib.loads(r.stdout)
    assert (got["http_port"], got["tls_cert"], got["kek_file"]) == (8443, "/etc/janua/tls/fullchain.pem",
                                                                    "/etc/janua/kek")
