"""Run one host fuzz target under atheris (libFuzzer): python -m fuzz.atheris_main TARGET [libFuzzer flags].

The verifier and tools packages are instrumented for coverage; the target's make() builds the
component once in a fresh temporary folder (or $JANUA_FUZZ_WORKDIR). fuzz/run.py is the usual entry.
"""

import logging
import os
import sys
import tempfile

import atheris


def main(argv):
    if len(argv) < 2 or argv[1].startswith("-"):
        print("usage: python -m fuzz.atheris_main TARGET [libFuzzer flags]", file=sys.stderr)
        return 2
    name = argv[1]
    logging.disable(logging.ERROR)    # the components log refusals; the verdict here is the exception
    with atheris.instrument_imports(include=["verifier", "tools"]):
        from fuzz.targets import load
        target = load(name)
        from fuzz.harness import guard
    workdir = os.environ.get("JANUA_FUZZ_WORKDIR") or tempfile.mkdtemp(prefix=f"janua-fuzz-{name}-")
    os.makedirs(workdir, exist_ok=True)
    one = guard(target.make(workdir), target.ALLOWED)
    atheris.Setup([argv[0]] + argv[2:], one)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
