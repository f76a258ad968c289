"""Notifications (docs/api.md "Notifications"): the events features emit for a tenant's security team.
`emit` writes to the outbox in the caller's transaction; delivery (signed webhooks, retries, the
delivery log) reads the outbox. Sans-IO apart from the storage call."""

EVENTS = ("attestation.failed", "attestation.missed", "device.quarantined", "device.released",
          "gateway.attestation.failed", "gateway.cut_off")


def emit(storage, tenant_id, event, data, now):
    """Queue `event` (one of EVENTS) with `data` (a JSON-able dict) for the tenant's webhooks."""
    if event not in EVENTS:
        raise ValueError(f"unknown notification event {event}")
    return storage.add_notification(tenant_id, event, data, now)
