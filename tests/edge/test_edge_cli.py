"""`janua serve --edge` from the command line: clear errors for missing or misplaced options, and a real
edge process in front of an in-process cloud printing its listen line."""

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgeworld import EDGE_KEK

ROOT = Path(__file__).parents[2]


def _serve(*argv, tmp):
    return subprocess.run([sys.executable, "-m", "tools", "serve", "--db", str(tmp / "e.db"), "--http-port", "0",
                           "--udp-port", "-1", *argv], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "JANUA_KEK": EDGE_KEK.hex()})


@pytest.mark.parametrize("argv, message", [
    (["--edge"], "janua: --edge needs --upstream URL"),
    (["--edge", "--upstream", "cloud:8080"], "janua: --upstream must be an http:// or https:// URL"),
    (["--edge", "--upstream", "http://127.0.0.1:9"], "janua: --edge needs --upstream-token-file FILE"),
    (["--upstream", "http://127.0.0.1:9"], "janua: --upstream is an edge option"),
    (["--edge", "--upstream", "http://127.0.0.1:9", "--upstream-token-file", "/nonexistent/edge.token"],
     "janua: cannot read /nonexistent/edge.token"),
])
def test_edge_cli_errors_are_one_clear_line(tmp_path, argv, message):
    r = _serve(*argv, tmp=tmp_path)
    assert r.returncode == 1
    assert r.stderr.startswith(message), r.stderr
    assert "Traceback" not in r.stderr


def test_edge_cli_refuses_a_token_file_without_an_admin_token(tmp_path):
    (tmp_path / "t").write_text("not a token\n")
    r = _serve("--edge", "--upstream", "http://127.0.0.1:9", "--upstream-token-file", str(tmp_path / "t"), tmp=tmp_path)
    assert r.returncode == 1 and "does not hold an admin token" in r.stderr
    assert "not a token" not in r.stderr


async def test_edge_process_prints_its_listen_line(world, tmp_path):
    (tmp_path / "edge.token").write_text(world.token + "\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tools", "serve", "--edge", "--upstream", world.cloud.url, "--upstream-token-file",
        str(tmp_path / "edge.token"), "--db", str(tmp_path / "edge-cli.db"), "--http-port", "0", "--udp-port", "0",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "JANUA_KEK": EDGE_KEK.hex()})
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        m = re.fullmatch(r"janua serve: http=127\.0\.0\.1:(\d+) udp=127\.0\.0\.1:(\d+) dtls=off edge upstream=(\S+)\n",
                         line)
        assert m, line
        assert m.group(3) == world.cloud.url
        r = await world.http.get(f"http://127.0.0.1:{m.group(1)}/v1/edge/status")
        assert (await r.json())["serving"] is True           # its first sync with the cloud succeeded
    finally:
        proc.terminate()
        _, err = await proc.communicate()
    assert world.token not in err.decode()
