"""The flash store's atomic write (janua.store, the provisioning write of janua.json) cut at every
block write of the emulated esp32 flash chip (LittleFS2 on 4 KiB NOR sectors): the next boot loads
the old config or the new one, never a mix, never nothing. test_store.py cuts at file operations."""

import json

import pytest

from tests.blockcuts import random_cuts, rng, sweep
from tests.firmware.test_store import PRELUDE
from tools.boards import MPRun

LOAD = PRELUDE + "print(json.dumps([load(), sorted(os.listdir())]))\n"


@pytest.fixture
def chip(tmp_path):
    mp = MPRun(tmp_path, chip="esp32")
    mp(PRELUDE + "Store().save_config(A)\n")           # provisioned once: "acme"
    return mp


def _checker(mp, seen):
    def check(n, torn):
        got, files = mp(LOAD)[0]                         # the next boot: LittleFS remounts the cut image
        assert got in ("acme", "bravo"), (n, torn, got)
        # janua.json is always there (a .tmp the cut left half written stays beside it, ignored)
        assert files[0] == "janua.json" and set(files) <= {
            "janua.json", "janua.json.tmp", "janua_state.json", "janua_state.json.tmp"}, (n, torn, files)
        assert mp(LOAD)[0] == [got, files], (n, torn)    # and it stays so
        seen.setdefault(got, []).append((n, torn))
    return check


def test_cut_at_every_block_write_of_a_config_save_keeps_old_or_new(chip):
    # the config's save, then the state's (as at a claim): cuts before and after the rename
    seen = {}
    script = PRELUDE + "s = Store()\ns.save_config(B)\ns.save_state({'result': 'ok'})\n"
    points, total = sweep(chip, script, _checker(chip, seen), torn=True)
    assert points == list(range(1, total + 1))          # every write, plain and torn
    # On this image the config's save is 6 writes (the .tmp's creation, its data and commits, the
    # rename: one metadata commit, its last write), the state's 3 more. Up to the rename's commit
    # (torn or not) the old config loads; after it, the new one.
    assert total == 9, total
    assert seen == {"acme": [(n, t) for n in range(1, 7) for t in (False, True)],
                    "bravo": [(n, t) for n in range(7, 10) for t in (False, True)]}, seen
    assert chip(LOAD)[0] == ["bravo", ["janua.json", "janua_state.json"]]


def test_cut_at_every_block_write_of_a_state_save_keeps_the_config(chip):
    # janua_state.json's write shares the flash: a cut there never costs the identity, and the
    # state is the old one (its rename is the save's last write) or, uncut, the new one
    chip(PRELUDE + "Store().save_state({'result': 'ok', 'at': 1})\n")
    states = []

    def check(n, torn):
        got, files = chip(LOAD)[0]
        assert got == "acme" and files[:2] == ["janua.json", "janua_state.json"], (n, torn, got, files)
        states.append(chip(PRELUDE + "print(json.dumps(Store().load_state()))\n")[0])
    points, total = sweep(chip, PRELUDE + "Store().save_state({'result': 'ok', 'at': 2})\n", check, torn=True)
    assert total == 3 and points == [1, 2, 3], (total, points)
    assert states == [{"result": "ok", "at": 1}] * 6
    assert chip(PRELUDE + "print(json.dumps(Store().load_state()))\n")[0] == {"result": "ok", "at": 2}


@pytest.mark.slow
def test_random_block_cuts_of_config_saves(chip):
    seen = {}
    _, total = sweep(chip, PRELUDE + "Store().save_config(B)\n", lambda n, t: None)
    chip(PRELUDE + "Store().save_config(A)\n")
    rnd = rng()
    # many saves in a row on a filling, compacting LittleFS: cut anywhere in the 40th rewrite
    script = PRELUDE + "s = Store()\nfor i in range(20):\n    s.save_config(B)\n    s.save_config(A)\n"
    done = random_cuts(chip, script, _checker(chip, seen), total * 40, 200, rnd)
    assert len(done) == 200 and "acme" in seen and "bravo" in seen, seen
