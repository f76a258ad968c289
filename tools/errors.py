"""The one user-facing error of the host CLI."""


class CLIError(Exception):
    """A failure the user can act on: printed as `janua: message` (plus a hint), exit code 1."""

    def __init__(self, message, hint=None, status=None):
        super().__init__(message)
        self.hint = hint
        self.status = status    # the HTTP status when the verifier refused a request (tools/api.py)
        self.detail = message   # what to show without the request line (the verifier's own message)
