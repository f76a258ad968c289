"""`janua tenant`: create, issue, list and revoke admin tokens in a registry file; a revoked token
is refused by a running verifier at once."""

import subprocess
import sys
from pathlib import Path


from tests.support import cli_db
from verifier.app import create_app
from verifier.config import Config

ROOT = Path(__file__).resolve().parents[2]


def janua(*args):
    return subprocess.run([sys.executable, "-m", "tools", *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


def test_tokens_listed_without_secrets_and_revoked(tmp_path):
    db = str(tmp_path / "r.db")
    first = janua("tenant", "create", "acme", "--db", db)
    assert first.returncode == 0, first.stderr
    tok1 = first.stdout.strip()
    second = janua("tenant", "token", "acme", "--db", db, "--label", "ci")
    tok2 = second.stdout.strip()
    listing = janua("tenant", "tokens", "acme", "--db", db)
    assert listing.returncode == 0
    assert tok1 not in listing.stdout and tok2 not in listing.stdout
    ids = [line.split()[0] for line in listing.stdout.splitlines()]
    assert len(ids) == 2 and "label=ci" in listing.stdout
    r = janua("tenant", "revoke", "acme", ids[1], "--db", db)
    assert r.returncode == 0, r.stderr
    assert "revoked" in janua("tenant", "tokens", "acme", "--db", db).stdout
    again = janua("tenant", "revoke", "acme", ids[1], "--db", db)
    assert again.returncode == 1 and again.stderr.startswith("janua: no active token")


def test_revoke_of_another_tenants_token_is_refused(tmp_path):
    db = str(tmp_path / "r.db")
    janua("tenant", "create", "a", "--db", db)
    janua("tenant", "create", "b", "--db", db)
    b_id = janua("tenant", "tokens", "b", "--db", db).stdout.split()[0]
    r = janua("tenant", "revoke", "a", b_id, "--db", db)
    assert r.returncode == 1
    assert "active" in janua("tenant", "tokens", "b", "--db", db).stdout


async def test_revoked_token_is_refused_by_the_verifier(tmp_path, aiohttp_client):
    path = str(tmp_path / "r.db")
    db = cli_db(path)               # the same registry as the verifier's, on either backend
    tok = janua("tenant", "create", "acme", "--db", db).stdout.strip()
    client = await aiohttp_client(create_app(Config(db_path=path, kek=bytes(32), udp_port=None)))
    hdr = {"Authorization": "Bearer " + tok}
    assert (await client.get("/v1/tenant", headers=hdr)).status == 200
    tid = janua("tenant", "tokens", "acme", "--db", db).stdout.split()[0]
    assert janua("tenant", "revoke", "acme", tid, "--db", db).returncode == 0
    assert (await client.get("/v1/tenant", headers=hdr)).status == 401
