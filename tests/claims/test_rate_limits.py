"""POST /v1/claim's rate limits (docs/claims.md "Refusals" step 1): the per-source bucket in front of everything
(junk included) and the per-batch bucket after the tag, each 429 rate_limited."""

import pytest


@pytest.fixture
def config(config):
    config.source_capacity, config.source_refill_per_s = 5, 0.001
    config.claim_batch_capacity, config.claim_batch_refill_per_s = 3, 0.001
    return config


async def test_per_batch_limit_is_429_rate_limited_after_the_tag(claims, client):
    batch, secret = await claims.batch()
    other, other_secret = await claims.batch(name="line 2")
    codes = [(await claims.claim(claims.board(batch, secret, f"SN-{i}")))[0] for i in range(4)]
    assert codes == [200, 200, 200, 429]
    status, body, _ = await claims.claim(claims.board(other, other_secret, "SN-X1"))   # the other batch's bucket
    assert status == 200
    status, body, _ = await claims.claim(claims.board(batch, secret, "SN-9"))         # the source's 6th
    assert (status, body["error"]) == (429, "rate_limited")


async def test_per_source_limit_is_429_even_for_junk(claims):
    codes = [(await claims.post(b"junk"))[0] for _ in range(6)]
    assert codes == [400] * 5 + [429]
