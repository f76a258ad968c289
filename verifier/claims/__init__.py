"""Zero-touch claims (issue #17, docs/claims.md): claim batches, POST /v1/claim and its admin routes."""
