"""The edge's upstream token and its role (docs/api.md "Roles"): an `edge` token is what an edge verifier
holds (the world's default), an `admin` one still works, and any other role is refused by the cloud at the
first sync, which the edge reports as one clear error line naming the token's role and the role it needs."""

import logging

import pytest

from edgeworld import binauth_http
from verifier.binauth.core import OK
from verifier.registry import core as registry


def _token(w, role):
    return registry.issue_token(w.cloud.storage, w.tenant_id, w.clock(), label=role, role=role)[1]


@pytest.mark.parametrize("role", ["edge", "admin"])
async def test_an_edge_or_admin_token_syncs_and_serves(world, role):
    dev, = world.devices(1)
    edge = await world.start_edge(token=_token(world, role))
    status = await (await world.http.get(edge.url + "/v1/edge/status")).json()
    assert status["serving"] is True                    # its first sync (at start) succeeded
    req, reply = await binauth_http(world, edge, dev)
    assert dev.reply(req, reply)["status"] == OK


@pytest.mark.parametrize("role", ["viewer", "operator", "factory"])
async def test_another_role_fails_the_first_sync_with_one_clear_line(world, caplog, role):
    caplog.set_level(logging.ERROR, logger="janua.verifier.edge")
    token = _token(world, role)
    edge = await world.start_edge(token=token)
    status = await (await world.http.get(edge.url + "/v1/edge/status")).json()
    assert status["serving"] is False                   # never synced: it refuses every authentication
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors[0] == (
        f"edge: the upstream {world.cloud.url} refused the edge's token (HTTP 403): its role is {role}, and an "
        "edge verifier needs a token with role edge (issue one on the upstream with `janua tenant token NAME "
        "--role edge`, into --upstream-token-file)")
    assert all(token not in r.getMessage() for r in caplog.records)


async def test_a_revoked_token_is_reported_as_unknown_or_revoked(world, caplog):
    caplog.set_level(logging.ERROR, logger="janua.verifier.edge")
    token_id, token = registry.issue_token(world.cloud.storage, world.tenant_id, world.clock(), role="edge")
    registry.revoke_token(world.cloud.storage, world.tenant_id, token_id, world.clock())
    await world.start_edge(token=token)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors[0] == (f"edge: the upstream {world.cloud.url} refused the edge's token (HTTP 401): the token in "
                         "--upstream-token-file is unknown or revoked there")
