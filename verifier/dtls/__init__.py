"""DTLS 1.2 with a pre-shared key, server side (docs/protocol.md section 4): the sans-IO core
(`server`, over `wire` and `crypto`), the registry's PSK lookup and audit (`auth`), CoAP resources
on the channel (`coap`) and the asyncio UDP driver (`driver`)."""

from verifier.dtls.crypto import DTLSError
from verifier.dtls.driver import DTLSEndpoint, open_dtls
from verifier.dtls.server import DTLSServer, PSKGrant

__all__ = ["DTLSError", "DTLSEndpoint", "DTLSServer", "PSKGrant", "open_dtls"]
