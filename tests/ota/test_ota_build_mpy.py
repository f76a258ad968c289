"""`janua ota build` and the .mpy version (tools/mpy_compat.py): a release of .mpy files records in
compat.mp_min the first MicroPython that loads them (1.19.0 for our mpy-cross's version 6), and a target
range reaching older MicroPython is refused unless the release ships source (--source)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools import mpy_compat
from tools import ota as host
from tools.errors import CLIError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app(tmp_path):
    d = tmp_path / "app"
    d.mkdir()
    (d / "main.py").write_text("print('app')\n")
    (d / "boot.py").write_text("pass\n")
    return d


def manifest(bundle):
    return json.loads((bundle / "manifest.json").read_bytes())


def test_mpy_release_records_the_first_micropython_that_loads_it(app, tmp_path):
    host.build_bundle(app, tmp_path / "b", "1.0.0", 1)
    m = manifest(tmp_path / "b")
    assert m["compat"]["mp_min"] == "1.19.0"
    assert sorted(f["path"] for f in m["files"]) == ["boot.py", "main.mpy"]


@pytest.mark.parametrize("mp_min", ["1.19.0", "1.19", "1.22.0"])
def test_mpy_release_keeps_a_target_that_loads_it(app, tmp_path, mp_min):
    host.build_bundle(app, tmp_path / "b", "1.0.0", 1, mp_min=mp_min)
    assert manifest(tmp_path / "b")["compat"]["mp_min"] == mp_min


@pytest.mark.parametrize("mp_min", ["1.18.0", "1.18.99", "1.12", "0.9"])
def test_mpy_release_for_older_micropython_is_refused(app, tmp_path, mp_min):
    with pytest.raises(CLIError, match=rf"^--mp-min {mp_min}: MicroPython before 1\.19 cannot load the \.mpy "
                                       r"version 6 files") as e:
        host.build_bundle(app, tmp_path / "b", "1.0.0", 1, mp_min=mp_min)
    assert "--source" in e.value.hint
    assert not (tmp_path / "b").exists()


def test_source_release_for_older_micropython_is_built_as_given(app, tmp_path):
    host.build_bundle(app, tmp_path / "b", "1.0.0", 1, mp_min="1.18.0", compile_py=False)
    m = manifest(tmp_path / "b")
    assert m["compat"]["mp_min"] == "1.18.0"
    assert sorted(f["path"] for f in m["files"]) == ["boot.py", "main.py"]


def test_source_release_records_no_micropython_minimum(app, tmp_path):
    host.build_bundle(app, tmp_path / "b", "1.0.0", 1, compile_py=False)
    assert manifest(tmp_path / "b")["compat"]["mp_min"] is None


def test_release_without_modules_to_compile_records_no_minimum(tmp_path):
    d = tmp_path / "app"
    d.mkdir()
    (d / "boot.py").write_text("pass\n")
    (d / "data.json").write_text("{}\n")
    host.build_bundle(d, tmp_path / "b", "1.0.0", 1)
    assert manifest(tmp_path / "b")["compat"]["mp_min"] is None


@pytest.mark.parametrize("version, mp_min, mp_max, expected", [
    (5, "1.12.0", "1.18.1", "1.12.0"),       # an older mpy-cross: the range must end before 1.19
    (7, "1.0.0", None, "1.0.0"),             # an mpy-cross newer than the table: nothing to check
    (7, None, None, None),
])
def test_check_target_for_other_mpy_versions(version, mp_min, mp_max, expected):
    assert mpy_compat.check_target(version, mp_min, mp_max) == expected


@pytest.mark.parametrize("mp_max", [None, "1.19.0", "1.22"])
def test_check_target_refuses_version_5_files_for_micropython_1_19_and_later(mp_max):
    with pytest.raises(CLIError, match=r"MicroPython 1\.19 and later cannot load the \.mpy version 5 files"):
        mpy_compat.check_target(5, "1.12.0", mp_max)


def test_cli_refuses_with_one_line_and_the_way_out(app, tmp_path):
    r = subprocess.run([sys.executable, "-m", "tools", "ota", "build", "--app", str(app), "--version", "1.0.0",
                        "--counter", "1", "--out", str(tmp_path / "b"), "--mp-min", "1.18.0"],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 1
    assert r.stderr.splitlines()[0] == ("janua: --mp-min 1.18.0: MicroPython before 1.19 cannot load the .mpy "
                                        "version 6 files janua's mpy-cross makes")
    assert "--source" in r.stderr
    r = subprocess.run([sys.executable, "-m", "tools", "ota", "build", "--app", str(app), "--version", "1.0.0",
                        "--counter", "1", "--out", str(tmp_path / "b"), "--mp-min", "1.18.0", "--source"],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "for MicroPython 1.18.0 or later" in r.stdout
