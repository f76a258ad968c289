"""janua verifier: the aiohttp service that registers devices and verifies them (HTTP + UDP).

Public entry points: create_app(config), start_server(config), Config, provision_bulk, VerifierError.
"""

from verifier.app import ServerHandle, create_app, start_server
from verifier.config import Config
from verifier.errors import VerifierError
from verifier.registry.core import provision_bulk

__all__ = ["Config", "ServerHandle", "VerifierError", "create_app", "provision_bulk", "start_server"]
