"""The app the factory adds every feature's ROUTES to (verifier/app.py): the same app, except
that a {device_id} path segment matches only a device id (16 lowercase hex, as DEVICE_ID in the OpenAPI
document), so that /v1/devices/bulk is not also a device's path (PATCH /v1/devices/bulk is 405 with
Allow: POST, not a 404 for a device named "bulk"). What it deliberately does not do: check the id
(verifier.web.request.path_device_id does) or change any other segment."""

DEVICE_ID_SEGMENT = "{device_id:[0-9a-f]{16}}"


class DeviceIdRouter:
    """app.router for the features' ROUTES, with {device_id} segments constrained to DEVICE_ID_SEGMENT."""

    def __init__(self, router):
        self._router = router

    def add_route(self, method, path, handler, **kw):
        return self._router.add_route(method, path.replace("{device_id}", DEVICE_ID_SEGMENT), handler, **kw)

    def __getattr__(self, name):
        return getattr(self._router, name)


class RoutedApp:
    """An aiohttp app whose .router is a DeviceIdRouter; everything else is the app's."""

    def __init__(self, app):
        self._app, self.router = app, DeviceIdRouter(app.router)

    def __getattr__(self, name):
        return getattr(self._app, name)
