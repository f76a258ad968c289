"""The registry: tenants, admin tokens, devices and their lifecycle, provisioning, PSK rotation, tenant policy
and the audit trail; its store is the base of the verifier's composed store (verifier/store.py)."""
