"""The credential/config store on flash: janua.json (config + secret) and janua_state.json.

Writes are atomic: write <name>.tmp, flush, sync where the port can, rename over the old file, so
a power cut leaves the old file or the new one, never a mix. When <name> is missing but a valid
<name>.tmp exists (a cut before the rename, or a provisioning tool that copies .tmp then renames)
the .tmp is used and the rename finished. The state file never holds the secret. This module does
not derive keys and does not talk to the network. The filesystem is injectable (`fs=`).
"""

import json
import os
from janua import StoreError

CONFIG = "janua.json"
STATE = "janua_state.json"
_MAX_FILE = 4096  # both files are a few hundred bytes; anything bigger is not ours
_ENOSPC = 28
_TRANSPORTS = ("udp", "http", "auto", "dtls")


class PosixFS:
    """The board's own filesystem (cwd = flash root)."""

    def open(self, path, mode):
        return open(path, mode)

    def rename(self, src, dst):
        os.rename(src, dst)  # replaces dst on VfsPosix, LittleFS and FAT (MicroPython retries)

    def remove(self, path):
        os.remove(path)

    def sync(self):
        if hasattr(os, "sync"):
            os.sync()


def _is_hex(s, n):
    if not isinstance(s, str) or len(s) != n:
        return False
    for c in s:
        if c not in "0123456789abcdef":
            return False
    return True


def check_config(cfg):
    """Raise StoreError unless cfg has the fields and forms janua needs."""
    if not isinstance(cfg, dict):
        raise StoreError("config is not a JSON object")
    if not _is_hex(cfg.get("device_id"), 16):
        raise StoreError("device_id must be 16 lowercase hex characters")
    if not _is_hex(cfg.get("master_secret"), 64):
        raise StoreError("master_secret must be 64 lowercase hex characters")
    srv = cfg.get("server")
    if not isinstance(srv, dict) or not isinstance(srv.get("host"), str) or not srv["host"]:
        raise StoreError("server.host missing")
    for k in ("udp_port", "http_port"):
        p = srv.get(k)
        if p is not None and (not isinstance(p, int) or not 0 < p < 65536):
            raise StoreError("server.%s must be a port number" % k)
    if cfg.get("transport", "auto") not in _TRANSPORTS:
        raise StoreError("transport must be one of udp, http, auto, dtls")


def read_json(fs, path, cap=_MAX_FILE):
    """The parsed JSON at `path`; None if the file does not exist; StoreError if it is over `cap`
    bytes or not JSON. Parsed from the stream after a size check, so no file-sized buffer is
    allocated (after an Ed25519 check a small board's heap may have no 4 KiB hole left)."""
    try:
        f = fs.open(path, "r")
    except OSError:
        return None
    try:
        n = f.seek(0, 2)
        f.seek(0)
        if n > cap:
            raise StoreError("%s is over %d bytes" % (path, cap))
        try:
            return json.load(f)
        except ValueError:
            raise StoreError("%s is not valid JSON" % path)
    finally:
        f.close()


def write_json(fs, path, obj):
    """Atomic replace: write path.tmp, flush, sync, rename over path. On failure (a full flash
    included) the temp file is removed, the old file is intact and StoreError says why."""
    tmp = path + ".tmp"
    text = json.dumps(obj)
    try:
        f = fs.open(tmp, "w")
        try:
            f.write(text)
            f.flush()
        finally:
            f.close()
        fs.sync()
        fs.rename(tmp, path)
    except OSError as e:
        try:
            fs.remove(tmp)
        except OSError:
            pass
        if e.args and e.args[0] == _ENOSPC:
            raise StoreError("flash full while writing %s; old file kept" % path)
        raise StoreError("cannot write %s (%s); old file kept" % (path, e))


class Store:
    def __init__(self, root="", fs=None):
        self.fs = fs or PosixFS()
        self.root = root

    def path(self, name):
        return self.root + "/" + name if self.root else name

    def _read_json(self, path):
        return read_json(self.fs, path)

    def _load(self, name, check):
        path = self.path(name)
        try:
            obj = self._read_json(path)
            if obj is not None:
                check(obj)
                return obj
            err = StoreError("%s not found (is the board provisioned?)" % path)
        except StoreError as e:
            err = e
        # The main file is missing or broken: a complete .tmp is the newer good copy.
        try:
            obj = self._read_json(path + ".tmp")
            if obj is None:
                raise err
            check(obj)
        except StoreError:
            raise err
        try:
            self.fs.rename(path + ".tmp", path)  # finish the interrupted write
        except OSError:
            pass
        return obj

    def _write(self, name, obj):
        write_json(self.fs, self.path(name), obj)

    def load_config(self, check=check_config):
        """The config, checked by `check` (janua.claim passes the claim image's check)."""
        return self._load(CONFIG, check)

    def save_config(self, cfg):
        check_config(cfg)
        self._write(CONFIG, cfg)

    def load_state(self):
        """The last auth state dict, or {} when there is none or it is unreadable."""
        try:
            obj = self._load(STATE, _check_state)
        except StoreError:
            return {}
        return obj

    def save_state(self, state):
        if "master_secret" in state:
            raise StoreError("the state file never holds the secret")
        self._write(STATE, state)


def _check_state(obj):
    if not isinstance(obj, dict):
        raise StoreError("state is not a JSON object")
