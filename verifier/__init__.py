"""janua verifier: the aiohttp service that registers devices and verifies them (HTTP + UDP).

Public entry points: create_app(config), start_server(config), Config, provision_bulk, VerifierError.
They load on first use, so that importing one module of the verifier (verifier.keys, verifier.serve for
the CLI's options) does not load the whole service; docs/architecture.md maps the packages.
"""

_PUBLIC = {"ServerHandle": "verifier.app", "create_app": "verifier.app", "start_server": "verifier.app",
           "Config": "verifier.config", "VerifierError": "verifier.errors", "provision_bulk": "verifier.registry.core"}

__all__ = ["Config", "ServerHandle", "VerifierError", "create_app", "provision_bulk", "start_server"]


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'verifier' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(_PUBLIC[name]), name)
