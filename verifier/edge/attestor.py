"""`janua serve --edge --tpm TCTI`: the edge attests its own gateway to the cloud (docs/attestation.md
section 6). At start it enrols once (when its state file names no gateway yet: EK certificate, AK,
credential activation, with --gateway-name and --gateway-model) and attests before its first sync, so
that sync gets the keys; then it attests again every `interval_s` of the tenant's gateway policy
(GET /v1/gateways/policy, read at every round), which is within the cloud's freshness window of
interval + grace.

A failed enrolment stops the edge at start (ConfigError: an operator must act). A failed or refused
attestation later is logged and retried at the next round: the cloud then refuses the edge's syncs and
the edge serves from its cache within its offline window. The state file holds the gateway id only.
"""

import asyncio
import json
import logging
import os

from verifier.edge import tpm as gw
from verifier.errors import ConfigError

log = logging.getLogger("janua.verifier.edge")

DEFAULT_INTERVAL_S = 3600
RETRY_S = 60


class GatewayRefused(Exception):
    """The cloud answered a gateway request with an error (status, message)."""

    def __init__(self, status, message):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class Attestor:
    def __init__(self, settings, upstream):
        self.settings, self.upstream = settings, upstream
        state_dir = os.path.dirname(os.path.abspath(settings.gateway_state))
        self.tpm = gw.TPM(settings.tpm, os.path.join(state_dir, "janua-tpm"))
        self.gateway_id = None
        self.last = None

    async def _call(self, method, path, body=None):
        status, doc = await self.upstream.request(method, path, body)
        if status >= 400:
            raise GatewayRefused(status, (doc or {}).get("message", "?") if isinstance(doc, dict) else "?")
        return doc

    def _load(self):
        try:
            with open(self.settings.gateway_state) as f:
                return json.load(f)["id"]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError) as e:
            raise ConfigError(f"{self.settings.gateway_state} is not a gateway state file: {e}") from None

    async def start(self):
        """Enrol if needed, then attest once (its failure is logged, not raised)."""
        self.gateway_id = self._load()
        if self.gateway_id is None:
            s = self.settings
            if not s.gateway_name or not s.gateway_model:
                raise ConfigError("--tpm: this gateway is not enrolled yet; give --gateway-name and --gateway-model")
            try:
                made = await gw.enrol(self._call, self.tpm, s.gateway_name, s.gateway_model, s.ek_chain)
            except (GatewayRefused, gw.TPMToolError) as e:
                raise ConfigError(f"gateway enrolment failed: {e}") from None
            self.gateway_id = made["id"]
            tmp = s.gateway_state + ".tmp"
            with open(tmp, "w") as f:
                json.dump({"id": self.gateway_id, "upstream": self.upstream.url}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, s.gateway_state)
            log.info("edge: enrolled gateway %s (%s, model %s)", self.gateway_id, s.gateway_name, s.gateway_model)
        await self.attest()

    async def attest(self):
        try:
            result = await gw.attest(self._call, self.tpm, self.gateway_id)
        except (GatewayRefused, gw.TPMToolError) as e:
            log.error("edge: gateway %s could not attest: %s", self.gateway_id, e)
            self.last = None
            return None
        except Exception as e:          # the upstream unreachable, a broken answer: retried next round
            log.error("edge: gateway %s could not attest: %s: %s", self.gateway_id, type(e).__name__, e)
            self.last = None
            return None
        self.last = result
        if result["passed"]:
            log.info("edge: gateway %s attested: %s, trust %d", self.gateway_id, result["status"], result["trust_level"])
        else:
            log.error("edge: gateway %s failed attestation: %s (%s); the cloud sends no keys until it passes",
                      self.gateway_id, result["status"], "; ".join(result["details"]["recommendations"]))
        return result

    async def _interval(self):
        try:
            return int((await self._call("GET", "/v1/gateways/policy"))["interval_s"])
        except Exception as e:
            log.warning("edge: cannot read the gateway policy (%s); attesting every %d s", e, DEFAULT_INTERVAL_S)
            return DEFAULT_INTERVAL_S

    async def loop(self):
        while True:
            await asyncio.sleep(await self._interval() if self.last is not None else RETRY_S)
            await self.attest()
