"""`janua restore`: put a checked backup (integrity_check, the registry's tables) at --db, refused while a
verifier holds that file and when it exists (unless --force, which keeps the old one aside)
(verifier/store_backup.py)."""

from tools.errors import CLIError


def configure(parser):
    parser.add_argument("--backup", required=True, metavar="BACKUP", help="a file written by janua backup")
    parser.add_argument("--db", default="janua.db", help="the registry file to create (default janua.db)")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing registry, kept as DB.before-restore-<UTC time>")


def run(args):
    from verifier.dburl import is_database_url
    if is_database_url(args.db):
        raise CLIError("janua restore works on a SQLite file; for a PostgreSQL registry use pg_restore (docs/operations.md 5b)")
    from verifier import store_backup
    try:
        made = store_backup.restore(args.backup, args.db, force=args.force)
    except store_backup.BackupError as e:
        raise CLIError(str(e), hint=e.hint) from e
    except OSError as e:
        raise CLIError(f"the restore failed: {e.strerror or e}: {e.filename or args.db}") from e
    print(f"janua restore: restored {made.path} from {args.backup}: {made.size} bytes, {made.devices} devices "
          f"({made.tenants} tenants) in {made.seconds:.2f} s")
    if made.kept:
        print(f"janua restore: the old registry is kept as {made.kept}")
    print("janua restore: start the verifier with the KEK this registry was sealed with (it is not in the backup)")
    return 0
