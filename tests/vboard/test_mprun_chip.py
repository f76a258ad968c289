"""tools.boards.MPRun on the emulated flash chip (chip="esp32"): the script's working directory is
LittleFS on the chip while the firmware comes from the host, power cuts at the N-th block write, the
outcome of a run, the chip's wear, save/restore."""

import pytest

from tools.boards import MPRun

WRITE = """
import os
print(os.getcwd())
f = open("note.txt", "w")
f.write("x" * 5000)      # more than one 4 KiB block of data
f.close()
from janua.store import Store     # the firmware is still imported from the host
print("written")
"""


@pytest.mark.parametrize("chip", ["esp32", "rp2040"])
def test_script_runs_on_the_chip_and_the_host_sees_its_files(tmp_path, chip):
    mp = MPRun(tmp_path, chip=chip)
    p = mp.raw(WRITE)
    assert mp.outcome(p) == "finished", p.stdout + p.stderr
    assert p.stdout.splitlines()[-2:] == ["/flash", "written"]
    assert (mp.root / "note.txt").read_text() == "x" * 5000
    assert mp.flash is None and not (tmp_path / "note.txt").exists()
    assert sum(mp.image.fs_wear()) >= 2            # the format and the data blocks were erased


def test_cut_ends_the_run_at_that_write_and_the_next_run_mounts_the_image(tmp_path):
    mp = MPRun(tmp_path, chip="esp32")
    mp.raw("open('before.txt', 'w').close()\n")
    saved = mp.save()
    p = mp.raw(WRITE, cut=2)
    assert mp.outcome(p) == "cut" and p.returncode == -9
    assert "written" not in p.stdout
    assert not (mp.root / "note.txt").exists() or (mp.root / "note.txt").read_text() != "x" * 5000
    assert (mp.root / "before.txt").exists()       # LittleFS kept what was committed before the cut
    p = mp.raw(WRITE, cut=2, torn=True)
    assert mp.outcome(p) == "cut"
    mp.restore(saved)
    assert mp.outcome(mp.raw(WRITE, cut=10_000)) == "finished"   # a cut past the last write never comes
    assert mp.outcome(mp.raw("raise ValueError('boom')\n")) == "failed"


def test_cut_needs_the_chip_and_the_chip_its_own_board(tmp_path):
    with pytest.raises(ValueError):
        MPRun(tmp_path / "a").raw("print(1)\n", cut=1)
    with pytest.raises(ValueError):
        MPRun(tmp_path / "b", chip="esp32").raw("print(1)\n", board="rp2040")
