"""The verifier's one exception root and its subclasses. HTTP mapping lives only in verifier.web.middleware."""


class VerifierError(Exception):
    """Base of every verifier error; `code` is the stable machine-readable name."""

    code = "error"


class ConfigError(VerifierError):
    """The service is misconfigured (e.g. no KEK) and refuses to start."""

    code = "config_error"


class CryptoError(VerifierError):
    """A key could not be derived, sealed or unsealed."""

    code = "crypto_error"


class ValidationError(VerifierError):
    """A request field is missing, of the wrong type or out of range."""

    code = "invalid_request"


class Unauthorized(VerifierError):
    """The admin token is missing, unknown or revoked."""

    code = "unauthorized"


class Forbidden(VerifierError):
    """The caller is authenticated but its request is refused by policy (e.g. an unattested edge gateway)."""

    code = "forbidden"


class NotFound(VerifierError):
    """No such object visible to the caller's tenant."""

    code = "not_found"


class Conflict(VerifierError):
    """The request conflicts with the current state."""

    code = "conflict"


class DuplicateSerial(Conflict):
    """A device with this serial number already exists in the tenant."""

    code = "duplicate_serial"


class InvalidTransition(Conflict):
    """The lifecycle action is not allowed from the device's current status."""

    code = "invalid_transition"


class RateLimited(VerifierError):
    """Too many requests from this source; try again later."""

    code = "rate_limited"


class StorageError(VerifierError):
    """The registry database failed."""

    code = "storage_error"


class Unavailable(VerifierError):
    """A service the request depends on (e.g. a pre-claim hook) could not be asked; retry later."""

    code = "unavailable"
