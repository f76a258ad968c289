"""`janua --version` names the installed distribution's version and the firmware package's."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_version_prints_both_versions():
    r = subprocess.run([sys.executable, "-m", "tools", "--version"], capture_output=True, text=True, cwd=ROOT,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "janua 0.1.0 (firmware 0.1.0)"
