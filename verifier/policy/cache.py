"""The policies of this verifier instance in memory: each tenant's documents, read from the store on the tenant's
first use and dropped by BinAuthCore's forget_tenant()/forget_all() (it is one of the core's listeners; on
PostgreSQL the cache bus brings other instances' drops), so a change applies to the next request without a
restart. It is the core's `policy_source`: binary auth and DTLS resolve a device's AuthRule through it when they
load the device, and again from memory once a policy change has started a new generation."""

from verifier.policy import core
from verifier.registry.model import Policy


class PolicyCache:
    def __init__(self, storage):
        self._storage = storage
        self._docs = {}          # tenant id -> {(scope, key): document}
        self._tenant = {}        # tenant id -> Policy (the tenant policy: the defaults of token_ttl_s and drift_s)

    # BinAuthCore's listener interface
    def forget(self, device_id):
        pass                     # a device's documents are the tenant's: a policy change calls forget_tenant

    def forget_tenant(self, tenant_id):
        self._docs.pop(tenant_id, None)
        self._tenant.pop(tenant_id, None)

    def forget_all(self):
        self._docs.clear()
        self._tenant.clear()

    def documents(self, tenant_id):
        docs = self._docs.get(tenant_id)
        if docs is None:
            docs = self._docs[tenant_id] = self._storage.tenant_policies(tenant_id)
        return docs

    def tenant_policy(self, tenant_id):
        pol = self._tenant.get(tenant_id)
        if pol is None:
            tenant = self._storage.get_tenant(tenant_id)
            pol = self._tenant[tenant_id] = Policy.from_json(tenant["policy"]) if tenant else Policy()
        return pol

    def effective(self, dev):
        """(effective policy, sources) of a device row (verifier.policy.core.effective)."""
        return core.effective(self.documents(dev["tenant_id"]), self.tenant_policy(dev["tenant_id"]), dev)

    # the core's policy_source interface
    @staticmethod
    def pinfo(dev):
        """What resolving a device's rule again needs of its row: (model, group, permissions, trust, attestation)."""
        return (dev.get("model_id"), (dev.get("metadata") or {}).get("group"), dev["permissions"],
                dev.get("trust_level", 0), dev.get("attestation_status") or "unknown")

    def auth_rule(self, tenant_id, device_id, pinfo):
        model, group, permissions, trust, attestation = pinfo
        dev = {"id": device_id, "tenant_id": tenant_id, "model_id": model, "metadata": {"group": group},
               "permissions": permissions}
        policy, _ = self.effective(dev)
        return core.auth_rule(policy, trust, attestation)

    def update_gate(self, dev, now):
        """None when the device's update policy lets a rollout offer it a release at `now`; else the answer's
        `policy` object: {decision: deferred | refused, reason, deferred_until (unix time the window opens, or
        None)} (verifier.policy.core.update_decision). The OTA check and the chain sync ask it."""
        policy, _ = self.effective(dev)
        d = core.update_decision(policy["update"], now)
        if d.decision == "offer":
            return None
        return {"decision": d.decision, "reason": d.reason, "deferred_until": d.deferred_until}
