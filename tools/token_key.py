"""`janua token-key`: list and rotate the verifier's token-signing keys directly in the registry file.

`rotate` makes a new ES256 key the one that signs and retires the current one; the retired key stays
in the JWKS and keeps verifying until every token it signed has expired (docs/tokens.md section 5).
A running verifier picks the change up within a minute. Rotating needs the KEK (the private key is
sealed with it); listing does not.
"""

import time

from tools.errors import CLIError


def configure(parser):
    sub = parser.add_subparsers(dest="token_key_command", metavar="ACTION")
    sub.required = True
    p = sub.add_parser("rotate", help="create a new signing key and retire the current one (with overlap)")
    p.add_argument("--db", default="janua.db")
    p.add_argument("--kek-file", help="key-encryption key file (64 hex characters); or set $JANUA_KEK")
    p.add_argument("--old-kek-file", metavar="FILE", action="append", default=[],
                   help="an earlier KEK that still opens sealed values (repeatable; or $JANUA_KEK_OLD)")
    p.add_argument("--dev", action="store_true", help="use the dev KEK beside the db (as `janua serve --dev`)")
    p = sub.add_parser("list", help="list the signing keys: kid, state, and until when each is published")
    p.add_argument("--db", default="janua.db")


def _state(row, now):
    from verifier.tokens.core import PUBLISH_GRACE_S
    if row["retired_at"] is None:
        return "active", None
    until = max(row["signed_until"], row["retired_at"]) + PUBLISH_GRACE_S
    return ("retired" if now <= until else "expired"), until


def run(args):
    from verifier.tokens import core as tokens
    from verifier.config import Config, make_sealer
    from verifier.errors import VerifierError
    from verifier.storage import open_storage
    now = int(time.time())
    try:
        storage = open_storage(args.db)
    except VerifierError as e:
        raise CLIError(str(e)) from e
    try:
        if args.token_key_command == "rotate":
            try:
                sealer = make_sealer(Config(db_path=args.db, kek_file=args.kek_file, dev=args.dev,
                                              old_kek_files=tuple(args.old_kek_file)))
            except VerifierError as e:
                raise CLIError(str(e), hint="pass the verifier's KEK: --kek-file FILE or $JANUA_KEK") from e
            keys = tokens.TokenKeys(storage, sealer)
            if storage.list_token_keys():
                try:
                    keys.load(now)
                    keys.active(now)
                except VerifierError as e:
                    raise CLIError("this KEK does not open the current token key",
                                   hint="use the KEK the verifier runs with") from e
            kid, retired = tokens.rotate(storage, sealer, now)
            print(f"janua token-key: new signing key {kid}; retired {', '.join(retired) or 'none'} "
                  "(published until every token it signed has expired)")
            return 0
        for row in storage.list_token_keys():
            state, until = _state(row, now)
            print(f"{row['kid']}  {state:7}  created={row['created']}  retired_at={row['retired_at'] or '-'}  "
                  f"signed_until={row['signed_until']}  published_until={until or '-'}")
    finally:
        storage.close()
    return 0
