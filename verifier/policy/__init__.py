"""Device policies: documents per tenant, model, group and device, and the effective policy (docs/policies.md)."""
