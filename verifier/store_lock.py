"""One writer per SQLite file: `janua serve` holds an exclusive lock on `<db>.lock` for its whole life, so a
second verifier on the same file refuses to start (rate limits and lockouts live in process memory: two
processes on one file would each keep their own). `janua restore` takes the same lock while it replaces a file.

The lock is flock(LOCK_EX | LOCK_NB) on `<db>.lock` (created 0600, kept open). The kernel releases it when
the process ends however it ends (SIGKILL, power cut), so a lock file left behind never blocks: only a live
holder does. The holder writes its pid into the file so that the refusal can name it. The file is never
removed (unlinking a lock file lets two processes lock two different files of one name).
What this does not do: lock across machines (flock on NFS is not to be trusted; one machine per SQLite
file), or keep out the short-lived host tools (`janua tenant`, `janua backup`) that SQLite itself serialises.
"""

import fcntl
import os

from verifier.errors import VerifierError

LOCK_MODE = 0o600
_OPEN = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class LockHeld(VerifierError):
    """Another process holds the writer lock of a SQLite file."""

    code = "db_locked"

    def __init__(self, db_path, lock_path, pid):
        self.db_path, self.lock_path, self.pid = db_path, lock_path, pid
        who = f"pid {pid}" if pid else "a process whose pid it did not record"
        super().__init__(f"{db_path} is in use by another verifier ({who} holds {lock_path}): "
                         "one verifier per SQLite file")


def lock_path(db_path):
    """The lock file of a SQLite file: `<db>.lock`."""
    return os.fspath(db_path) + ".lock"


class WriterLock:
    """The held lock of one SQLite file; `close()` releases it (so does the end of the process)."""

    def __init__(self, db_path, fd):
        self.db_path, self.path, self._fd = os.fspath(db_path), lock_path(db_path), fd

    def close(self):
        if self._fd is not None:
            os.close(self._fd)          # closing the only descriptor releases the flock
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def acquire(db_path):
    """Take the writer lock of `db_path` without waiting: a WriterLock, or LockHeld naming the holder's pid.
    None for an in-memory or URI database (nothing on disk to share). OSError if the lock file cannot be
    created or opened (e.g. a read-only directory)."""
    p = os.fspath(db_path)
    if p in ("", ":memory:") or p.startswith("file:"):
        return None
    path = lock_path(p)
    fd = os.open(path, _OPEN, LOCK_MODE)
    try:
        try:
            os.fchmod(fd, LOCK_MODE)
        except PermissionError:
            pass                        # not ours to change; it holds only a pid
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(p, path, _read_pid(fd)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    return WriterLock(p, fd)


def _read_pid(fd):
    """The pid the holder wrote, or None (not written yet, or not a number)."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
