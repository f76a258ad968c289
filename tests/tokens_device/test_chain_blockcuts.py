"""janua.chain's flash writes cut at every block write of the emulated esp32 flash chip: a top-up
(chain.bin rewritten through .tmp and a rename, then chain.used compacted) and a token's use (a 2-byte
append to chain.used). After each cut the next boot reads a whole chain, old or new, and a used token
stays used. test_chain_flash.py cuts at file operations."""

import json

import pytest

from tests.blockcuts import random_cuts, rng, sweep
from tests.tokens_device.conftest import DAY, T0, make_chain
from tests.tokens_device.test_chain_flash import PRELUDE
from tools.boards import MPRun

OLD = make_chain(0, 30)
NEW = make_chain(30, 5, prev=OLD[-1])

STATE = PRELUDE + """
ch = Chain(DEV)
h = ch.header()
print(json.dumps([h, ch.status(), sorted(ch.load_used()), pick(%d), pick(%d),
                  hexlify(ch.slot(h[1] - 1)).decode()]))
""" % (T0 + 10, T0 + 2 * DAY + 10)

TOP_UP = PRELUDE + "Chain(DEV).top_up(new_tokens(), %d, %d, %d, [0, 1])\n" % (DAY, DAY, T0)

# The three states a top-up passes through: the old chain (0 and 1 used), the new chain with the log
# not yet compacted, and the new chain with the acknowledged uses dropped from the log. In each, the
# used tokens 0 and 1 cannot be picked and token 2 is the one for day 2.
BEFORE = [[0, 30, DAY, DAY], [28, T0 + 2 * DAY, 29], [0, 1], None, 2, OLD[29].hex()]
SWITCHED = [[2, 33, DAY, DAY], [33, T0 + 2 * DAY, 34], [0, 1], None, 2, NEW[4].hex()]
AFTER = [[2, 33, DAY, DAY], [33, T0 + 2 * DAY, 34], [], None, 2, NEW[4].hex()]


@pytest.fixture
def chip(tmp_path):
    mp = MPRun(tmp_path, chip="esp32")
    (mp.root / "new.json").write_text(json.dumps([t.hex() for t in OLD]))
    mp(PRELUDE + "Chain(DEV).top_up(new_tokens(), %d, %d, %d)\n" % (DAY, DAY, T0))
    mp(PRELUDE + "ch = Chain(DEV)\nch.mark_used(0)\nch.mark_used(1)\n")
    (mp.root / "new.json").write_text(json.dumps([t.hex() for t in NEW]))
    return mp


def _top_up_checker(chip, seen):
    def check(n, torn):
        state = chip(STATE)[0]
        name = {json.dumps(BEFORE): "before", json.dumps(SWITCHED): "switched",
                json.dumps(AFTER): "after"}.get(json.dumps(state))
        assert name is not None, (n, torn, state)
        seen.append(name)
    return check


def test_block_cut_at_every_write_of_a_top_up_keeps_a_whole_chain(chip):
    assert chip(STATE)[0] == BEFORE
    seen = []
    points, total = sweep(chip, TOP_UP, _top_up_checker(chip, seen), torn=True)
    # 35 writes on this image (chain.bin.tmp's 3.5 KiB in LittleFS's 32-byte programs and their
    # commits, the rename, chain.used's rewrite). Cuts 1..32 (plain and torn) find the old chain, 33..35
    # the new one beside the old log; only the finished top-up has the compacted log. Never a mix.
    assert total == 35 and points == list(range(1, 36)), (total, points)
    assert seen == ["before"] * 64 + ["switched"] * 6, seen
    assert chip(STATE)[0] == AFTER


USE = PRELUDE + "ch = Chain(DEV)\nch.mark_used(2)\nch.mark_used(3)\n"
AGAIN = PRELUDE + """
ch = Chain(DEV)
try:
    ch.mark_used(2); r = "marked"
except ChainError:
    r = "refused"
print(json.dumps([r, sorted(Chain(DEV).load_used()), os.stat("chain.used")[6]]))
"""


def test_block_cut_at_every_write_of_a_use_then_the_log_stays_aligned(chip):
    # uses of 2 then 3: a cut before 2's append reaches flash leaves 2 unused (present() sends only
    # after mark_used returned); after it, 2 is used for good. Either way the log loads, aligned.
    seen = []

    def check(n, torn):
        used = chip(PRELUDE + "print(json.dumps(sorted(Chain(DEV).load_used())))\n")[0]
        assert used in ([0, 1], [0, 1, 2]), (n, torn, used)
        out = chip(AGAIN)[0]
        assert out == (["marked", [0, 1, 2], 6] if used == [0, 1] else ["refused", [0, 1, 2], 6]), (n, torn, out)
        seen.append(len(used))
    points, total = sweep(chip, USE, check, torn=True)
    # one write per use (the append's commit): a cut at the first leaves 2 unused, at the second used
    assert total == 2 and points == [1, 2], (total, points)
    assert seen == [2, 2, 3, 3], seen


@pytest.mark.slow
def test_random_block_cuts_of_top_ups(chip):
    start = chip.save()
    _, total = sweep(chip, TOP_UP, lambda n, t: None)
    chip.restore(start)
    seen = []
    done = random_cuts(chip, TOP_UP, _top_up_checker(chip, seen), total, 100, rng())
    assert len(done) == 100 and set(seen) <= {"before", "switched", "after"}
