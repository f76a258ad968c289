"""`janua backup`: a consistent online copy of the registry (SQLite's backup API, one snapshot) while
`janua serve` runs; a new 0600 file, never written over an existing one (verifier/store_backup.py).
The key-encryption key is not in it: the output says so."""

import os
import sys
import time

from tools.errors import CLIError


def configure(parser):
    parser.add_argument("--db", default="janua.db", help="the registry to copy (default janua.db)")
    parser.add_argument("--out", required=True, metavar="BACKUP",
                        help="the backup file to create (refused if it exists)")
    parser.add_argument("--step-pages", type=int, default=1024, metavar="N",
                        help="pages copied per step, progress reported after each (default 1024)")


def kek_advice(db):
    """The one line on the KEK: where it is, that it is not in the backup."""
    dev = f"{db}.kek"
    where = f"the KEK file ({dev})" if os.path.exists(dev) else "the KEK (--kek-file or $JANUA_KEK)"
    return f"the KEK is not in the backup: keep {where} safe separately; a restore is useless without it"


class Progress:
    """Progress lines on stderr for a copy of more than one step: at most one a second, and the last."""

    def __init__(self, step_pages, out=None, clock=time.monotonic):
        # out None: sys.stderr as it is when a line is printed (not when this module was imported)
        self.step, self.out, self.clock, self.last = step_pages, out, clock, None

    def __call__(self, done, total):
        if total <= self.step:
            return
        now = self.clock()
        if done < total and self.last is not None and now - self.last < 1.0:
            return
        self.last = now
        print(f"janua backup: {100 * done // total}% ({done}/{total} pages)", file=self.out or sys.stderr, flush=True)


def run(args):
    from verifier.dburl import is_database_url
    if is_database_url(args.db):
        raise CLIError("janua backup works on a SQLite file; for a PostgreSQL registry use pg_dump (docs/operations.md 5b)")
    from verifier import store_backup
    try:
        made = store_backup.backup(args.db, args.out, step_pages=args.step_pages, progress=Progress(args.step_pages))
    except store_backup.BackupError as e:
        raise CLIError(str(e), hint=e.hint) from e
    except OSError as e:
        raise CLIError(f"the backup failed: {e.strerror or e}: {e.filename or args.out}") from e
    print(f"janua backup: wrote {made.path}: {made.size} bytes, {made.devices} devices "
          f"({made.tenants} tenants) in {made.seconds:.2f} s")
    print(f"janua backup: {kek_advice(args.db)}")
    return 0
