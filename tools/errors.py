"""The one user-facing error of the host CLI."""


class CLIError(Exception):
    """A failure the user can act on: printed as `janua: message` (plus a hint), exit code 1."""

    def __init__(self, message, hint=None):
        super().__init__(message)
        self.hint = hint
