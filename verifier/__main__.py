"""`python -m verifier [--db ...] [--dev] ...`: the same as `janua serve` (without the rest of the CLI)."""

import argparse
import sys

from verifier import serve


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m verifier", description="run the janua verifier")
    serve.configure(parser)
    args = parser.parse_args(argv)
    try:
        return serve.run(args) or 0
    except serve.ServeError as e:
        print(f"janua: {e}", file=sys.stderr)
        if e.hint:
            print(f"janua: hint: {e.hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
