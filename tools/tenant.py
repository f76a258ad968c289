"""`janua tenant`: create tenants and admin tokens directly in the registry file.

The new token is printed once to stdout; only its hash is stored.
"""

import sys
import time

from tools.errors import CLIError


def configure(parser):
    sub = parser.add_subparsers(dest="tenant_command", metavar="ACTION")
    sub.required = True
    p = sub.add_parser("create", help="create a tenant and print its first admin token")
    p.add_argument("name")
    p.add_argument("--db", default="janua.db")
    p = sub.add_parser("token", help="issue another admin token for a tenant")
    p.add_argument("name")
    p.add_argument("--db", default="janua.db")
    p.add_argument("--label", help="a note stored with the token (e.g. who holds it)")


def run(args):
    from verifier import registry
    from verifier.errors import VerifierError
    from verifier.storage import SQLiteStorage
    try:
        storage = SQLiteStorage(args.db)
    except VerifierError as e:
        raise CLIError(str(e)) from e
    try:
        now = time.time()
        if args.tenant_command == "create":
            try:
                tenant = registry.create_tenant(storage, args.name, now)
            except VerifierError as e:
                raise CLIError(str(e)) from e
            token_id, token = registry.issue_token(storage, tenant["id"], now, label="initial")
        else:
            tenant = storage.get_tenant_by_name(args.name)
            if tenant is None:
                raise CLIError(f"no tenant named {args.name!r} in {args.db}",
                               hint=f"janua tenant create {args.name} --db {args.db}")
            token_id, token = registry.issue_token(storage, tenant["id"], now, label=args.label)
    finally:
        storage.close()
    print(token)
    print(f"janua tenant: tenant={tenant['name']} id={tenant['id']} token_id={token_id} "
          "(the token is shown only once)", file=sys.stderr)
