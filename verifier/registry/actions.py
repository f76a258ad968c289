"""Admin changes of a device that need the running app, not only the storage: the one path every caller
of a lifecycle action takes (POST /v1/devices/{id}/lifecycle and the console's lifecycle form), so that each
is audited, forgotten by the caches and handed to the feature hooks the same way."""

from verifier.appkeys import CORE, LIFECYCLE_HOOKS, STORAGE
from verifier.registry import core as registry


async def change_lifecycle(app, tenant_id, device_id, doc, now, actor):
    """registry.change_lifecycle (validated, audited as `actor`; its errors propagate), then the binary-auth
    cache forgets the device on this instance and, through the cache bus, on every other (the very next packet
    sees the change), then each LIFECYCLE_HOOKS hook runs (MQTT: certificates, the broker's client). The device."""
    dev = registry.change_lifecycle(app[STORAGE], tenant_id, device_id, doc, now, actor)
    app[CORE].forget(device_id)
    for hook in app.get(LIFECYCLE_HOOKS, ()):
        await hook(app, device_id, now)
    return dev
