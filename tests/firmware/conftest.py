"""Run firmware code on the real MicroPython unix port as a board (tools.boards profiles).

`mp(script, board="esp32")` writes the script into a fresh flash directory (the cwd), puts
firmware/ and a copy of boards/unix/hal.py (as janua_hal) on the path, runs it with the board's
heap and hidden modules, and returns the JSON objects it printed, one per line.
"""

import json
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from tools.boards import BOARDS_DIR, FIRMWARE_DIR, micropython_cmd

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "binauth.json").read_text())


class MPRun:
    def __init__(self, tmp_path):
        self.flash = tmp_path / "flash"
        self.flash.mkdir()
        self.lib = tmp_path / "hal"
        self.lib.mkdir()
        shutil.copy(BOARDS_DIR / "unix" / "hal.py", self.lib / "janua_hal.py")
        self.n = 0

    def raw(self, script, board="esp32", timeout=60):
        self.n += 1
        path = self.flash.parent / ("t%d.py" % self.n)
        path.write_text(textwrap.dedent(script))
        argv, env = micropython_cmd(board, path, path=[FIRMWARE_DIR, self.lib])
        return subprocess.run(argv, env=env, cwd=self.flash, capture_output=True, text=True,
                              timeout=timeout)

    def __call__(self, script, board="esp32", timeout=60):
        p = self.raw(script, board, timeout)
        assert p.returncode == 0, p.stdout + p.stderr
        out = []
        for line in p.stdout.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass  # plain console output
        return out


@pytest.fixture
def mp(tmp_path):
    return MPRun(tmp_path)


@pytest.fixture
def vectors():
    return VECTORS
