"""Power cuts at the block level, for the suites that re-run their power-cut checks on the emulated
flash chip (tools.boards.MPRun(chip=...)): a write operation is one erase or one program call of the
chip (what LittleFS issues for a file's data, its metadata commits and their compaction), counted
from the start of the interpreter that runs the operation.

`sweep()` cuts one operation at write 1, 2, ... until it runs to its end uncut, from the same chip
every time, and lets the suite check the board after each cut; `random_cuts()` is the slow set."""

import os
import random


def sweep(mp, script, check, stride=1, head=4, torn=False, limit=20000, keep=()):
    """Cut `script` at write N for N = 1..head, then every `stride`-th N, then every N between the
    last cut and the first run that finishes (so the first and the last few are always cut). Before
    each run the chip is put back as it was on entry; after each cut `check(n, torn)` looks at the
    board (its own runs restart it: LittleFS mounts the cut image afresh). `torn`: also a torn cut
    (the interrupted erase or program half done) at each point (True) or at every torn-th N (an int). Returns (points, total): the N that
    were cut and the number of writes of the uncut run; the chip is left as the uncut run left it.
    `keep`: files that only ever grow on a board (the binary-auth timestamp) keep their latest
    content across the restores (written back from the host: a write the board does not count)."""
    start = mp.save()
    points = []

    def one(n, tear=False):
        restore(mp, start, keep)
        p = mp.raw(script, cut=n, torn=tear)
        how = mp.outcome(p)
        assert how in ("cut", "finished"), (n, tear, p.stdout + p.stderr)
        if how == "cut":
            check(n, tear)
        return how == "cut"

    def point(n):
        cut = one(n)
        if cut:
            points.append(n)
            if torn is True or (torn and n % torn == 0):
                assert one(n, True), n     # the same write is reached, torn or not
        return cut

    n = 0
    while True:
        nxt = n + 1 if n < head else n + stride
        assert nxt <= limit, "the operation did not finish within %d writes" % limit
        if not point(nxt):
            break
        n = nxt
    for k in range(n + 1, nxt):        # the gap between the last cut and the finished run
        if not point(k):
            break
    total = points[-1] if points else 0
    restore(mp, start, keep)
    p = mp.raw(script)
    assert mp.outcome(p) == "finished", p.stdout + p.stderr
    return points, total


def restore(mp, start, keep=()):
    """The chip as it was at `start` (mp.save()), but the `keep` files as they are now."""
    latest = [(name, (mp.root / name).read_bytes()) for name in keep if (mp.root / name).exists()]
    mp.restore(start)
    for name, data in latest:
        (mp.root / name).write_bytes(data)


def seed():
    """The slow set's random seed: JANUA_CUT_SEED, else a fixed one (a failure names its seed)."""
    return int(os.environ.get("JANUA_CUT_SEED", "18"))


def random_cuts(mp, script, check, total, count, rnd, keep=()):
    """`count` cuts of `script` at random writes 1..total, torn or not at random, each from the chip
    as it was on entry (`keep` as in sweep); `check(n, torn)` after each. Returns the (n, torn) pairs."""
    start = mp.save()
    done = []
    for _ in range(count):
        n, tear = rnd.randint(1, total), rnd.random() < 0.5
        restore(mp, start, keep)
        p = mp.raw(script, cut=n, torn=tear)
        assert mp.outcome(p) == "cut", (n, tear, p.stdout + p.stderr)
        check(n, tear)
        done.append((n, tear))
    restore(mp, start, keep)
    return done


def rng():
    return random.Random(seed())
