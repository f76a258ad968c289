"""The operator console (docs/console.md): server-rendered HTML pages under /console, signed in with a tenant's
admin token, over the same registry, fleet, OTA, health, attestation and audit functions as the JSON API."""
