"""What every host fuzz target shares: the input framing, the per-input sanity checks, the crash type.

A target module (fuzz/targets/*.py) defines
  ALLOWED: the exception classes the component documents (anything else coming out is a crash),
  make(workdir) -> one_input(data): builds the component once, returns the per-input function,
  seeds(workdir) -> [bytes]: valid messages built there and from the shared test vectors.
`guard(one_input, ALLOWED)` wraps it with the checks below; fuzz/atheris_main.py runs it under atheris.

Per-input sanity checks (a failure is a crash like any other):
  time: one input taking longer than MAX_INPUT_S (a quadratic parser, a hang) raises SlowInput;
  memory: every MEM_EVERY inputs the process's resident set is read, and growth beyond MAX_GROWTH_KIB
  over the first reading raises MemoryGrowth (state that an input can grow without bound).
libFuzzer's own -timeout and -rss_limit_mb stay in force as the outer limits (fuzz/run.py sets them).
"""

import json
import os
import time

from fuzz import known
from fuzz.world import rss_kib

SEP = b"\xa5JF\x5a"          # separates the messages of one input (robust to mutation, unlike lengths)
MAX_INPUT_S = 2.0
MEM_EVERY = 512
MAX_GROWTH_KIB = 256 * 1024


class FuzzFailure(Exception):
    """A harness check failed (not an error class of the component under test)."""


class SlowInput(FuzzFailure):
    """One input took longer than MAX_INPUT_S."""


class MemoryGrowth(FuzzFailure):
    """The process grew by more than MAX_GROWTH_KIB while fuzzing."""


class Invariant(FuzzFailure):
    """The component answered something its documentation rules out."""


def check(cond, what):
    if not cond:
        raise Invariant(what)


def frames(data, limit=16):
    """The messages of one input: data split at SEP, at most `limit` of them."""
    return data.split(SEP, limit)[:limit]


def join(messages):
    return SEP.join(messages)


# values of every JSON type, for type confusion (a structure-aware mutation libFuzzer's byte
# mutations rarely make: a whole object turned into a string, an integer into a float)
PALETTE = ("x", "", 0, -1, 1.5, 0.0, 2 ** 31, True, None, [], [1], {}, {"a": 1})


def json_paths(doc, prefix=()):
    """Every (path of keys and indexes) inside a parsed JSON document, itself included."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += json_paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += json_paths(v, prefix + (i,))
    return out


def confuse(doc, data):
    """`doc` with the value at one path replaced by a value of another type, both chosen by a
    hash of the input `data` (so a crash replays from its input), or None if doc has no paths."""
    import copy
    import zlib
    h = zlib.crc32(data)
    paths = json_paths(doc)[1:]
    if not paths:
        return None
    path = paths[h % len(paths)]
    value = PALETTE[(h >> 12) % len(PALETTE)]
    out = copy.deepcopy(doc)
    node = out
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return out


def guard(one_input, allowed, known_log=None):
    """The per-input function atheris runs. With JANUA_FUZZ_KNOWN=tolerate, an input failing as one of
    fuzz.known.KNOWN is counted in the JSON file `known_log` ($JANUA_FUZZ_KNOWN_LOG) instead."""
    state = {"n": 0, "base": 0}
    tolerate = known.tolerated()
    known_log = known_log or os.environ.get("JANUA_FUZZ_KNOWN_LOG")
    hits = {}

    def run(data):
        t0 = time.perf_counter()
        try:
            one_input(data)
        except allowed:
            pass
        except Exception as e:
            what = known.match(e) if tolerate else None
            if what is None:
                raise
            if what not in hits:
                hits[what] = {"count": 0, "input_hex": data[:4096].hex()}
            hits[what]["count"] += 1
            c = hits[what]["count"]
            if known_log and (c & (c - 1) == 0 or c % 1000 == 0):      # 1, 2, 4, 8, ... and every 1000th
                with open(known_log, "w") as f:
                    json.dump(hits, f)
        dt = time.perf_counter() - t0
        if dt > MAX_INPUT_S:
            raise SlowInput(f"one input took {dt:.2f} s (limit {MAX_INPUT_S} s)")
        state["n"] += 1
        if state["n"] % MEM_EVERY == 0:
            rss = rss_kib()
            if not state["base"]:
                state["base"] = rss
            elif rss - state["base"] > MAX_GROWTH_KIB:
                raise MemoryGrowth(f"resident set grew by {rss - state['base']} KiB while fuzzing")
    return run
