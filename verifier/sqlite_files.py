"""Owner-only SQLite files: the registry and the edge's own file hold sealed secrets and token hashes, so
they and their -wal and -shm are 0600 whatever the umask and whatever an older release left. Nothing here
opens a database; `make_private(path)` runs just before sqlite3.connect."""

import logging
import os
import stat

log = logging.getLogger("janua.verifier.storage")

PRIVATE_MODE = 0o600


def make_private(path):
    """Make a SQLite file owner-only (0600) before sqlite3 opens it: create it empty with that mode if it
    is not there, and take group/other bits off an existing one and off its -wal and -shm. SQLite creates
    -wal and -shm with the mode of the main file, so they follow it. In-memory and URI names are left alone."""
    p = os.fspath(path)
    if p in ("", ":memory:") or p.startswith("file:"):
        return
    try:
        fd = os.open(p, os.O_RDONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), PRIVATE_MODE)
    except FileExistsError:
        fd = None
    if fd is not None:
        try:
            os.fchmod(fd, PRIVATE_MODE)         # exactly 0600: a umask such as 0o277 must not leave it read-only
        finally:
            os.close(fd)
    for suffix in ("", "-wal", "-shm"):
        try:
            fd = os.open(p + suffix, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            continue
        try:
            _tighten(fd, p + suffix)
        finally:
            os.close(fd)


def _tighten(fd, name):
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    if mode & 0o077:
        try:
            os.fchmod(fd, mode & 0o700)
        except PermissionError:
            log.warning("%s is readable by others (mode %o) and is not ours to change", name, mode)
