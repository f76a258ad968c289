"""The host fuzz targets: name -> module (each has ALLOWED, make(workdir), seeds(workdir))."""

TARGETS = ("binauth", "dtls", "coap", "ota", "jwt", "chain", "http", "bulk", "tpm", "attest", "health", "claim", "claimcoap")


def load(name):
    import importlib
    if name not in TARGETS:
        raise KeyError(f"unknown fuzz target {name!r} (one of {', '.join(TARGETS)})")
    return importlib.import_module(f"fuzz.targets.{name}")
