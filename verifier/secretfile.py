"""Files that hold secrets (deployment manifests, the dev admin token, signing keys): created new, 0600.

A secret file is never opened over an existing one: O_CREAT|O_EXCL refuses an existing path (and a
symlink planted there, O_NOFOLLOW), so a pre-existing file can neither be truncated nor lend the secret
its permissive mode. The mode is set on the descriptor (fchmod), not left to the umask. `sync` makes the
content and the directory entry durable. What this module does not do: encrypt, or lock against another
process writing the same directory (O_EXCL already makes two writers pick different files).
It lives in the verifier because `janua serve --dev` (verifier/serve.py) writes the token with it; the host
tools (manifests, signing keys) import it from here, as tools may import the verifier and never the reverse.
"""

import os
from pathlib import Path

SECRET_MODE = 0o600
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def open_new(path):
    """A new file at `path`, mode 0600, open for binary writing. FileExistsError if anything is there."""
    fd = os.open(path, _NEW, SECRET_MODE)
    try:
        os.fchmod(fd, SECRET_MODE)      # the umask may have taken bits away (0o400); this is exact
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "wb")


def sync(f):
    """Flush and fsync an open file."""
    f.flush()
    os.fsync(f.fileno())


def sync_dir(path):
    """fsync the directory that holds `path`, so that its new entry survives a power cut."""
    fd = os.open(Path(path).resolve().parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new(path, data):
    """Create `path` (0600; FileExistsError if it exists) holding `data`, durably."""
    with open_new(path) as f:
        f.write(data)
        sync(f)
    sync_dir(path)


def open_unique(path, limit=1000):
    """A new 0600 file at `path`, or, when that exists, at the first free `<stem>-2<suffix>`,
    `<stem>-3<suffix>`, ... (`devices.csv.manifest.jsonl` -> `devices.csv.manifest-2.jsonl`).
    Returns (file, the path it is at)."""
    path = Path(path)
    stem, suffix = (path.name[:-len(path.suffix)], path.suffix) if path.suffix else (path.name, "")
    for n in range(1, limit + 1):
        p = path if n == 1 else path.with_name(f"{stem}-{n}{suffix}")
        try:
            return open_new(p), p
        except FileExistsError:
            continue
    raise FileExistsError(f"{path} and {limit - 1} numbered siblings all exist")


def replace(path, data):
    """Put `data` at `path` (0600) by a new file renamed over whatever is there: the old file's mode
    and content play no part. Durable."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    try:
        with open_new(tmp) as f:
            f.write(data)
            sync(f)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sync_dir(path)
