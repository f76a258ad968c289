"""A small synchronous client for the verifier's admin HTTP API (stdlib urllib), for host tools.

Errors become CLIError with a hint: connection refused ("is `janua serve` running?"), 401 (token),
and the verifier's own JSON error message otherwise.
"""

import http.client
import json
import os
import urllib.error
import urllib.request

from tools.errors import CLIError
from tools.output import add_output_argument, note

DEFAULT_SERVER = "http://127.0.0.1:8080"


def add_server_arguments(parser):
    parser.add_argument("--server", default=os.environ.get("JANUA_SERVER", DEFAULT_SERVER),
                        help="verifier base URL (env JANUA_SERVER; default %(default)s)")
    parser.add_argument("--token", default=os.environ.get("JANUA_TOKEN"),
                        help="tenant admin token (env JANUA_TOKEN; or --token-file)")
    parser.add_argument("--token-file", default=os.environ.get("JANUA_TOKEN_FILE"),
                        help="file holding the tenant admin token")
    parser.add_argument("--ca-file", default=os.environ.get("JANUA_CA_FILE"),
                        help="PEM file of the CA (or the self-signed certificate) that signs an https:// "
                             "verifier's certificate (env JANUA_CA_FILE; default: the system's trust store)")


def add_actions(parser, dest, actions, output=True, own_arguments=(), no_output=()):
    """The sub-commands of one command from {name: (configure(p), run(api, args), help)}: each gets the
    server arguments and, with `output`, -o table|json (not those in `no_output`, which print no data),
    except those in `own_arguments` (which add them to their own sub-commands)."""
    sub = parser.add_subparsers(dest=dest, metavar="ACTION")
    sub.required = True
    for name, (conf, _, help_) in actions.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name not in own_arguments:
            add_server_arguments(p)
            if output and name not in no_output:
                add_output_argument(p)
        conf(p)


def run_action(args, dest, actions):
    """Run the sub-command add_actions parsed, with an API client from the server arguments."""
    return actions[getattr(args, dest)][1](API.from_args(args), args)


def call_explained(api, method, path, body=None, missing=None, hint=None):
    """api.call with one-line errors: a 404 is `missing` (with `hint`) when that is given, a 400 or 409 the verifier's
    own reason as the message; anything else as api.call raised it."""
    try:
        return api.call(method, path, body)
    except CLIError as e:
        if e.status == 404 and missing:
            raise CLIError(missing, hint=hint) from None
        if e.status in (400, 409):                   # the verifier's own reason is the message
            raise CLIError(e.detail, status=e.status) from None
        raise


def check_url(url, flag="--server"):
    """`url` if it is an http:// or https:// URL with a host (and a valid port), else CLIError."""
    from verifier.config import is_http_url      # the one definition, shared with janua serve --upstream
    if not is_http_url(url):
        raise CLIError(f"{flag} must be an http:// or https:// URL, not {url!r}",
                       hint=f"e.g. {flag} {DEFAULT_SERVER}")
    return url


class API:
    def __init__(self, server, token=None, token_file=None, timeout=60, ca_file=None):
        self.server = check_url(server).rstrip("/")
        self.context = None
        if ca_file:
            import ssl
            try:
                self.context = ssl.create_default_context(cafile=ca_file)
            except (OSError, ssl.SSLError) as e:
                raise CLIError(f"cannot load --ca-file {ca_file}: {e}")
        if token is None and token_file:
            try:
                with open(token_file) as f:
                    token = f.read().strip()
            except OSError as e:
                raise CLIError(f"cannot read token file {token_file}: {e.strerror}")
        if not token:
            raise CLIError("no admin token", hint="pass --token, --token-file or set JANUA_TOKEN "
                                                  "(`janua serve --dev` prints one; `janua tenant token NAME` makes one)")
        self.token = token
        self.timeout = timeout

    @classmethod
    def from_args(cls, args):
        return cls(args.server, args.token, args.token_file, ca_file=getattr(args, "ca_file", None))

    def page(self, path, params, limit):
        """One page of a cursor-paged list route: GET path?params&limit=N, as the API answers it."""
        from urllib.parse import urlencode
        return self.call("GET", f"{path}?{urlencode({**params, 'limit': limit})}")

    def walk(self, path, params, key, limit, note_every=10):
        """The items (`key` of each page) of a cursor-paged list route, page after page of `limit`
        while a page has a next_cursor. `params` are the query's other parameters ("cursor" that of the
        first page); every `note_every` pages a note on stderr says how far the walk is."""
        params, n, pages = dict(params), 0, 0
        while True:
            page = self.page(path, params, limit)
            items = page[key]
            n, pages = n + len(items), pages + 1
            yield from items
            if not page.get("next_cursor") or not items:
                return
            if pages % note_every == 0:
                note(f"{n} {key} so far, going on...")
            params["cursor"] = page["next_cursor"]

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        return self._send(method, path, data, "application/json" if data is not None else None)

    def upload(self, path, parts, progress=None):
        """POST multipart/form-data streamed from disk: parts = [(name, bytes | Path)], in order.
        `progress(n)` is called with each chunk's size (a tqdm bar's update)."""
        boundary = "janua-" + os.urandom(12).hex()
        heads, size = [], 0
        for name, src in parts:
            head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                    f"filename=\"{name.rsplit('/', 1)[-1]}\"\r\n"
                    "Content-Type: application/octet-stream\r\n\r\n").encode()
            n = len(src) if isinstance(src, bytes) else os.path.getsize(src)
            heads.append(head)
            size += len(head) + n + 2
        tail = f"--{boundary}--\r\n".encode()
        size += len(tail)

        def body():
            for head, (_, src) in zip(heads, parts):
                yield head
                if isinstance(src, bytes):
                    chunks = (src,)
                else:
                    chunks = _file_chunks(src)
                for c in chunks:
                    if progress is not None:
                        progress(len(c))
                    yield c
                yield b"\r\n"
            yield tail

        return self._send("POST", path, body(), f"multipart/form-data; boundary={boundary}", size)

    def _send(self, method, path, data, content_type, length=None):
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.token)
        if content_type is not None:
            req.add_header("Content-Type", content_type)
        if length is not None:
            req.add_header("Content-Length", str(length))
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self.context) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                msg = json.loads(raw).get("message") or raw.decode(errors="replace")
            except ValueError:
                msg = raw.decode(errors="replace")[:200]
            hint = "check --token / JANUA_TOKEN" if e.code == 401 else None
            err = CLIError(f"verifier refused {method} {path}: HTTP {e.code}: {msg}", hint=hint, status=e.code)
            err.detail = msg
            raise err
        except urllib.error.URLError as e:
            raise CLIError(f"cannot reach the verifier at {self.server}: {e.reason}",
                           hint="is `janua serve` running? (--server / JANUA_SERVER)")
        except (TimeoutError, ConnectionError) as e:
            raise CLIError(f"the verifier at {self.server} did not answer: {e}")
        except http.client.HTTPException as e:
            raise CLIError(f"the verifier at {self.server} gave a broken answer ({type(e).__name__})",
                           hint="is --server the verifier's URL?")
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise CLIError(f"{self.server} answered {method} {path} with something that is not JSON",
                           hint="is --server the verifier's URL?") from None


def _file_chunks(path, size=65536):
    with open(path, "rb") as f:
        while True:
            b = f.read(size)
            if not b:
                return
            yield b
