"""`janua tenant`: create tenants and admin tokens directly in the registry file.

The new token is printed once to stdout; only its hash is stored. A token has a role (docs/api.md "Roles"):
`create` issues an admin token, `token --role ROLE` any role (default admin).
"""

import sys
import time

from tools.errors import CLIError
from verifier.registry.model import ROLES


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
    p.add_argument("--role", choices=ROLES, default="admin",
                   help="what the token may do (docs/api.md \"Roles\"): viewer reads, operator also runs lifecycle "
                        "and rollouts, factory only provisions, edge only syncs an edge verifier; default admin")
    p = sub.add_parser("tokens", help="list a tenant's admin tokens (ids, roles and labels, never the tokens)")
    p.add_argument("name")
    p.add_argument("--db", default="janua.db")
    p = sub.add_parser("revoke", help="revoke one of a tenant's admin tokens at once")
    p.add_argument("name")
    p.add_argument("token_id", help="the token's id (tok_...), from `janua tenant tokens NAME`")
    p.add_argument("--db", default="janua.db")


def run(args):
    from verifier.registry import core as registry
    from verifier.errors import VerifierError
    from verifier.storage import open_storage
    try:
        storage = open_storage(args.db)
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
            if args.tenant_command == "tokens":
                for t in storage.list_tokens(tenant["id"]):
                    state = "revoked" if t["revoked_at"] else "active"
                    print(f"{t['id']}  {state:7}  role={t['role']:8}  created={t['created']}  label={t['label'] or ''}")
                return 0
            if args.tenant_command == "revoke":
                try:
                    registry.revoke_token(storage, tenant["id"], args.token_id, now)
                except VerifierError as e:
                    raise CLIError(str(e), hint=f"janua tenant tokens {args.name} --db {args.db}") from e
                print(f"janua tenant: revoked {args.token_id} of tenant {tenant['name']}")
                return 0
            token_id, token = registry.issue_token(storage, tenant["id"], now, label=args.label, role=args.role)
    finally:
        storage.close()
    print(token)
    role = getattr(args, "role", "admin")
    print(f"janua tenant: tenant={tenant['name']} id={tenant['id']} token_id={token_id} role={role} "
          "(the token is shown only once)", file=sys.stderr)
