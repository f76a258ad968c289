"""Device health (docs/health.md): the report codec, ingest on every transport, recommendations."""
