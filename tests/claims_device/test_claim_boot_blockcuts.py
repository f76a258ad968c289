"""The claim at boot (janua.app.run) cut at every block write of the emulated esp32 flash chip: the claim
answer's write over the claim image, the state file's, whatever LittleFS commits in between. After each
cut the next boot loads a whole file (the claim image or the whole identity) and then claims again (the
verifier resumes) or authenticates. test_claim_boot.py cuts at the store's file operations."""

import json

import pytest

from tests.blockcuts import random_cuts, rng, sweep
from tests.claims_device.test_claim_boot import BOOT, LOAD, MASTER, image, verifier  # noqa: F401 (fixture)
from tools.boards import MPRun

CLAIM_KEYS = ["claim", "server", "wifi"]


@pytest.fixture
def chip(tmp_path):
    # the firmware as shipped (.mpy, as janua flash installs it): from source, the claim boot's compile
    # garbage leaves the esp32 heap too fragmented for the authentication after it on LittleFS
    from tools.build import build_firmware
    build_firmware(tmp_path / "fw", "unix")
    return MPRun(tmp_path, chip="esp32", firmware=tmp_path / "fw" / "lib")


def _checker(chip, v, seen):
    def check(n, torn):
        keys = chip(LOAD)[0]                     # never a broken file: the claim image, or the identity
        again = keys == CLAIM_KEYS
        if not again:
            assert "device_id" in keys and "master_secret" in keys and "claim" not in keys, (n, torn, keys)
        claims = len(v.claims)
        line = chip(BOOT)[0]
        assert line.startswith("janua: authenticated device=1234567890abcdef via http"), (n, torn, line)
        assert line.endswith("(claimed)") == again, (n, torn, line)
        assert len(v.claims) == claims + (1 if again else 0), (n, torn)
        cfg = json.loads((chip.root / "janua.json").read_text())
        assert cfg["master_secret"] == MASTER.hex() and "claim" not in cfg, (n, torn)
        seen.append("claim image" if again else "identity")
    return check


def test_block_cut_at_every_write_of_the_claim_boot_then_the_next_boot_claims_or_authenticates(chip, verifier):
    v = verifier()
    (chip.root / "janua.json").write_text(json.dumps(image(v.port)))
    seen = []
    points, total = sweep(chip, BOOT, _checker(chip, v, seen), torn=True)
    # 13 writes on this image: the answer's save (6: up to its rename's commit), then the state file's
    # and the auth timestamp's. Cuts at 1..6 (plain and torn) find the claim image, 7..13 the identity.
    assert total == 13 and points == list(range(1, 14)), (total, points)
    assert seen == ["claim image"] * 12 + ["identity"] * 14, seen
    assert chip(LOAD)[0] != CLAIM_KEYS           # the uncut boot claimed


@pytest.mark.slow
def test_random_block_cuts_of_claim_boots(chip, verifier):
    v = verifier()
    (chip.root / "janua.json").write_text(json.dumps(image(v.port)))
    start = chip.save()
    _, total = sweep(chip, BOOT, lambda n, t: None)
    chip.restore(start)
    seen = []
    done = random_cuts(chip, BOOT, _checker(chip, v, seen), total, 60, rng())
    assert len(done) == 60 and set(seen) <= {"claim image", "identity"}
