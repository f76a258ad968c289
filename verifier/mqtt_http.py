"""HTTP edge of X.509 certificates and MQTT broker integration (docs/mqtt.md)."""

ROUTES = []


async def ctx(app):
    """cleanup_ctx resource of this feature (app.py appends it)."""
    yield


def add_routes(app):
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
