"""Token-signing keys (docs/tokens.md section 5): sealed at rest, kept across restarts, rotated with
an overlap (the retired key verifies and stays in the JWKS until every token it signed has expired),
and the `janua token-key` command on the registry file."""

import json

import pytest

from tests.support import app_storage, cli_db
from tools import cli
from verifier.tokens import chain
from verifier.tokens import core as tokens
from verifier.app import create_app
from verifier.appkeys import CONFIG, SEALER, STORAGE

DAY = 86400


def kid_of(token):
    return json.loads(tokens.b64url_decode(token.split(".")[0]))["kid"]


async def jwks_kids(client):
    return [k["kid"] for k in (await (await client.get("/.well-known/jwks.json")).json())["keys"]]


async def test_private_key_is_sealed_at_rest_and_survives_restart(aiohttp_client, client, config, tenant, device):
    kid = kid_of(device.token)
    ((sealed, pub),) = client.app[STORAGE]._db.execute("SELECT sealed, pub FROM token_keys").fetchall()
    scalar = client.app[tokens.TOKEN_KEYS].active(0).private.private_numbers().private_value.to_bytes(32, "big")
    assert scalar not in sealed and len(pub) == 65
    await client.close()
    again = await aiohttp_client(create_app(config))
    assert await jwks_kids(again) == [kid]
    r = await again.get("/v1/auth/device/whoami", headers=device.bearer)
    assert r.status == 200


async def test_rotation_keeps_old_tokens_valid_until_the_overlap_ends(client, tenant, device, clock):
    app = client.app
    old_kid, old_token = kid_of(device.token), device.token
    toks = [bytes.fromhex(t) for t in (await device.sync(client, have=-1))["tokens"]]
    new_kid, retired = tokens.rotate(app[STORAGE], app[SEALER], clock())
    assert retired == [old_kid]
    clock.advance(tokens.RELOAD_S)                  # a running verifier re-reads the key table
    await device.obtain(client)
    assert kid_of(device.token) == new_kid
    assert await jwks_kids(client) == [new_kid, old_kid]
    r = await client.get("/v1/auth/device/whoami", headers={"Authorization": f"Bearer {old_token}"})
    assert r.status == 200                          # signed by the retired key, still trusted
    r = await client.post("/v1/auth/device/offline", json={"token": toks[0].hex()})
    assert r.status == 200                          # so are the chain tokens it signed
    # the old key signed chain tokens up to the last one's exp: it stays published that long
    last_exp = chain.decode_chain_token_unverified(toks[-1])["exp"]
    until = app[tokens.TOKEN_KEYS].trusted(clock())[old_kid].published_until()
    assert last_exp + tokens.PUBLISH_GRACE_S <= until <= last_exp + tokens.PUBLISH_GRACE_S + tokens.SIGNED_UNTIL_STEP_S
    clock.now = until
    await device.obtain(client)
    assert await jwks_kids(client) == [new_kid, old_kid]
    clock.now = until + 1
    assert await jwks_kids(client) == [new_kid]
    # a token of the old key with any exp is refused now: its key is no longer trusted
    old = app[tokens.TOKEN_KEYS]._keys[old_kid]
    forged_exp = tokens.encode_jwt(old, {"sub": device.hex, "iat": int(clock()), "exp": int(clock()) + 600,
                                         "scp": "ota", "tid": tokens.tenant_short_id(tenant.id)})
    r = await client.get("/v1/auth/device/whoami", headers={"Authorization": f"Bearer {forged_exp}"})
    assert r.status == 401


async def test_rotated_key_without_chains_is_published_for_its_jwt_lifetime(client, device, clock):
    app = client.app
    old_kid = kid_of(device.token)
    exp = json.loads(tokens.b64url_decode(device.token.split(".")[1]))["exp"]
    tokens.rotate(app[STORAGE], app[SEALER], clock())
    clock.advance(tokens.RELOAD_S)
    until = app[tokens.TOKEN_KEYS].trusted(clock())[old_kid].published_until()
    assert exp + tokens.PUBLISH_GRACE_S <= until <= exp + tokens.PUBLISH_GRACE_S + tokens.SIGNED_UNTIL_STEP_S


def _cli(argv, capsys):
    rc = cli.main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


async def test_token_key_cli_rotates_and_lists(client, device, config, tmp_path, capsys, clock):
    kek = tmp_path / "kek"
    kek.write_text(config.kek.hex())
    db = cli_db(config.db_path)
    rc, out, _ = _cli(["token-key", "list", "--db", db], capsys)
    assert rc == 0 and out.count("\n") == 1 and "active" in out and kid_of(device.token) in out
    rc, out, _ = _cli(["token-key", "rotate", "--db", db, "--kek-file", str(kek)], capsys)
    assert rc == 0 and f"retired {kid_of(device.token)}" in out
    rc, out, _ = _cli(["token-key", "list", "--db", db], capsys)
    lines = out.splitlines()
    assert len(lines) == 2 and "retired" in lines[0] and "active" in lines[1]
    clock.advance(tokens.RELOAD_S)
    old = device.token
    await device.obtain(client)
    assert kid_of(device.token) != kid_of(old) and kid_of(device.token) in lines[1]
    r = await client.get("/v1/auth/device/whoami", headers={"Authorization": f"Bearer {old}"})
    assert r.status == 200


@pytest.mark.parametrize("kek", ["wrong", "none"])
def test_token_key_rotate_refuses_without_the_right_kek(client, config, tmp_path, capsys, monkeypatch, kek):
    monkeypatch.delenv("JANUA_KEK", raising=False)
    args = ["token-key", "rotate", "--db", cli_db(config.db_path)]
    if kek == "wrong":
        (tmp_path / "kek").write_text("11" * 32)
        args += ["--kek-file", str(tmp_path / "kek")]
    rc, _, err = _cli(args, capsys)
    assert rc == 1 and err.startswith("janua: ")
    st = app_storage(config.db_path)
    assert st._db.execute("SELECT count(*) FROM token_keys").fetchone()[0] == 1
    st.close()


def test_app_state_key_is_exported(client):
    assert isinstance(client.app[tokens.TOKEN_KEYS], tokens.TokenKeys) and client.app[CONFIG].kek
