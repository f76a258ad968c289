"""Device tokens (ES256 JWTs), the JWKS, offline chain tokens and their sync (docs/tokens.md)."""
