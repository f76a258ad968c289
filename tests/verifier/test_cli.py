"""`janua serve` / `python -m verifier` as a subprocess, and `janua tenant` on a registry file."""

import argparse
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tools import tenant as tenant_cmd
from tools.errors import CLIError
from verifier.store import SQLiteStorage

ROOT = Path(__file__).parents[2]


def _tenant(argv):
    p = argparse.ArgumentParser()
    tenant_cmd.configure(p)
    return tenant_cmd.run(p.parse_args(argv))


def test_tenant_create_and_token(tmp_path, capsys):
    db = str(tmp_path / "r.db")
    _tenant(["create", "acme", "--db", db])
    first = capsys.readouterr().out.strip()
    _tenant(["token", "acme", "--db", db, "--label", "ci"])
    second = capsys.readouterr().out.strip()
    assert re.fullmatch(r"jna_[A-Za-z0-9_-]{43}", first) and first != second
    st = SQLiteStorage(db)
    assert st.get_tenant_by_name("acme") is not None and st.count_tenants() == 1
    with pytest.raises(CLIError):
        _tenant(["token", "nobody", "--db", db])
    with pytest.raises(CLIError):
        _tenant(["create", "acme", "--db", db])
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert first.encode() not in raw and second.encode() not in raw


def test_serve_subprocess_dev(tmp_path):
    db = tmp_path / "j.db"
    env = {k: v for k, v in os.environ.items() if k != "JANUA_KEK"}
    proc = subprocess.Popen([sys.executable, "-m", "verifier", "--db", str(db), "--dev", "--http-port", "0",
                             "--udp-port", "0", "--dtls-port", "0"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        token_line = proc.stdout.readline()
        listen = proc.stdout.readline()
        m = re.fullmatch(r"janua serve: http=127\.0\.0\.1:(\d+) udp=127\.0\.0\.1:(\d+) dtls=127\.0\.0\.1:(\d+)\n",
                         listen)
        assert m, (token_line, listen)
        token = re.match(r"janua serve: token=(jna_\S+) tenant=default file=(\S+)", token_line).group(1)
        assert (tmp_path / "j.db.token").read_text().strip() == token
        assert (tmp_path / "j.db.token").stat().st_mode & 0o777 == 0o600
        assert (tmp_path / "j.db.kek").stat().st_mode & 0o777 == 0o600
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(10)
            s.sendto(bytes(20), ("127.0.0.1", int(m.group(2))))
            assert s.recv(64) == bytes([3]) + bytes(12)
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0


def test_serve_refuses_without_kek(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "JANUA_KEK"}
    r = subprocess.run([sys.executable, "-m", "verifier", "--db", str(tmp_path / "j.db")], cwd=ROOT,
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 1 and r.stderr.startswith("janua: no key-encryption key")
