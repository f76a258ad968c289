"""`janua serve`: the verifier's own command line (verifier/serve.py: options, --dev, --edge) in the
janua CLI; its ServeError becomes the CLI's one user-facing error."""

from tools.errors import CLIError
from verifier import serve


def configure(parser):
    serve.configure(parser)


def run(args):
    try:
        return serve.run(args)
    except serve.ServeError as e:
        raise CLIError(str(e), hint=e.hint) from e

