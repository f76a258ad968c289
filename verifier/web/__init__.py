"""The HTTP plumbing every feature's routes use: the error middleware (the only place domain errors
become HTTP), admin-token authentication, request parsing helpers, the OpenAPI building blocks and
the operations routes (/healthz, /metrics, /openapi.json). It holds no feature's routes."""
