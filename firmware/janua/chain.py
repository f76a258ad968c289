"""The offline token chain on flash (docs/tokens.md): pick, mark used, present, sync.

Files (in the flash root, or `root`):
  chain.bin   header (16 bytes, big-endian): magic b"JCH1", u16 first index, u16 count,
              u32 period_s, u32 validity_s; then `count` chain tokens in fixed 107-byte slots, in
              index order (indices need not be contiguous: used ones are dropped at top-up).
              Rewritten only at a top-up, atomically (chain.bin.tmp, sync, rename).
  chain.used  append-only log of u16 indices (big-endian) of tokens this device has used: one
              offline authentication appends 2 bytes. Compacted (atomically) at a top-up, when the
              used tokens leave chain.bin and the verifier has acknowledged them.

`mark_used(i)` reaches flash before the token is sent, so a power cut between the two loses one
token but never lets the device present it again. A torn append (an odd-sized log) is ignored and
repaired before the next append: the token it named was never sent. Slots are read by seek, one at
a time; the device never holds the whole chain in RAM. The device cannot check the ES256
signatures (no P-256 here) and does not try; it checks what it can of the tokens the verifier
sends (size, version, its device id, increasing indices, the hash links) and keeps neither the
JWKS nor the revocation list of a sync (only a verifier needs them).
"""

import struct
from binascii import hexlify
from micropython import const
from janua import JanuaError, AuthError, StoreError
from janua.store import PosixFS

CHAIN = "chain.bin"
USED = "chain.used"
MAGIC = b"JCH1"
SLOT = const(107)
_HDR = const(16)
FIELDS_AT = const(13)  # offset of index, nbf, exp in a token (public: chainsync uses it)
_MAX_SLOTS = const(256)  # a chain is 30; anything far bigger is not ours
_MAX_USED = const(1024)  # bytes of chain.used (512 uses between syncs)


class ChainError(JanuaError):
    """No usable chain token, or a chain on flash or from the verifier is malformed."""


class Chain:
    def __init__(self, device_id, fs=None, root=""):
        self.device_id = device_id          # 8 bytes
        self.fs = fs or PosixFS()
        self.root = root
        self._buf = bytearray(10)           # index, nbf, exp of one slot
        self._used_n = None                 # bytes in chain.used (None: not read yet)
        self.used = set()

    def p(self, name):
        return self.root + "/" + name if self.root else name

    # ------------------------------------------------------------------ reading
    def header(self):
        """(first, count, period, validity), or None when there is no chain."""
        try:
            f = self.fs.open(self.p(CHAIN), "rb")
        except OSError:
            return None
        try:
            return self._header(f)
        finally:
            f.close()

    def _header(self, f):
        h = f.read(_HDR)
        if len(h) != _HDR or h[:4] != MAGIC:
            raise ChainError("chain.bin is not a chain")
        first, count, period, validity = struct.unpack_from(">HHII", h, 4)
        if count > _MAX_SLOTS or f.seek(0, 2) != _HDR + count * SLOT:
            raise ChainError("chain.bin has the wrong size")
        return first, count, period, validity

    def _fields(self, f, i):
        """(index, nbf, exp) of slot i, read by seek into the one 10-byte buffer."""
        f.seek(_HDR + i * SLOT + FIELDS_AT)
        if f.readinto(self._buf) != 10:
            raise ChainError("chain.bin slot %d is short" % i)
        return struct.unpack_from(">HII", self._buf)

    def slot(self, i):
        """The 107 bytes of slot i."""
        f = self.fs.open(self.p(CHAIN), "rb")
        try:
            f.seek(_HDR + i * SLOT)
            b = f.read(SLOT)
        finally:
            f.close()
        if len(b) != SLOT:
            raise ChainError("chain.bin slot %d is short" % i)
        return b

    def load_used(self):
        """The set of used indices from chain.used (a torn last entry ignored)."""
        if self._used_n is not None:
            return self.used
        used = set()
        n = 0
        try:
            f = self.fs.open(self.p(USED), "rb")
        except OSError:
            f = None
        if f is not None:
            try:
                b = f.read(_MAX_USED + 1)
            finally:
                f.close()
            if len(b) > _MAX_USED:
                raise ChainError("chain.used is over %d bytes" % _MAX_USED)
            n = len(b)
            for k in range(0, n - 1, 2):
                used.add((b[k] << 8) | b[k + 1])
        self.used, self._used_n = used, n
        return used

    def status(self, now=None):
        """(count of unused tokens not yet expired at `now` (all when None), next nbf or None,
        highest index held or -1). No token bytes leave this function."""
        used = self.load_used()
        try:
            f = self.fs.open(self.p(CHAIN), "rb")
        except OSError:
            return 0, None, -1
        try:
            first, count, period, validity = self._header(f)
            unused, nxt, high = 0, None, -1
            for i in range(count):
                index, nbf, exp = self._fields(f, i)
                high = index
                if index in used or (now is not None and exp <= now):
                    continue
                unused += 1
                if nxt is None:
                    nxt = nbf
        finally:
            f.close()
        return unused, nxt, high

    def token_for(self, now, drift_s=300):
        """(index, slot number) of the unused token whose [nbf - drift, exp + drift] holds `now`,
        preferring one whose own window [nbf, exp) holds it; ChainError when there is none."""
        used = self.load_used()
        best = None
        try:
            f = self.fs.open(self.p(CHAIN), "rb")
        except OSError:
            raise ChainError("no chain on flash (sync first)")
        try:
            count = self._header(f)[1]
            # slots are in index order, so nbf and exp grow with the slot: bisect to the first
            # slot not expired beyond the drift, then read forward while nbf - drift <= now
            lo, hi = 0, count
            while lo < hi:
                mid = (lo + hi) >> 1
                if self._fields(f, mid)[2] + drift_s < now:
                    lo = mid + 1
                else:
                    hi = mid
            for i in range(lo, count):
                index, nbf, exp = self._fields(f, i)
                if nbf - drift_s > now:
                    break
                if index in used or exp + drift_s < now:
                    continue
                off = nbf - now if now < nbf else (now - exp + 1 if now >= exp else 0)
                if best is None or off < best[0]:
                    best = (off, index, i)
        finally:
            f.close()
        if best is None:
            raise ChainError("no unused chain token for time %d" % now)
        return best[1], best[2]

    # ------------------------------------------------------------------ writing
    def mark_used(self, index):
        """Append `index` to chain.used (2 bytes) and sync; returns only once it is on flash."""
        used = self.load_used()
        if index in used:
            raise ChainError("token %d already used" % index)
        if self._used_n & 1:
            self._rewrite_used(used)        # a torn append: realign before appending
        f = self.fs.open(self.p(USED), "ab")
        try:
            f.write(struct.pack(">H", index))
            f.flush()
        finally:
            f.close()
        self.fs.sync()
        used.add(index)
        self._used_n += 2

    def _atomic(self, name, write):
        path = self.p(name)
        tmp = path + ".tmp"
        try:
            f = self.fs.open(tmp, "wb")
            try:
                write(f)
                f.flush()
            finally:
                f.close()
            self.fs.sync()
            self.fs.rename(tmp, path)
        except OSError as e:
            try:
                self.fs.remove(tmp)
            except OSError:
                pass
            raise StoreError("cannot write %s (%s); old file kept" % (path, e))

    def _rewrite_used(self, keep):
        keep = sorted(keep)

        def write(f):
            for i in keep:
                f.write(struct.pack(">H", i))
        self._atomic(USED, write)
        self.used, self._used_n = set(keep), 2 * len(keep)

    def top_up(self, tokens, period, validity, now, acked=(), drift_s=300):
        """Store a top-up (janua.chainsync.top_up); the number of tokens added."""
        from janua.chainsync import top_up
        return top_up(self, tokens, period, validity, now, acked, drift_s)

    # ------------------------------------------------------------------ network
    def sync(self, tokens, now, drift_s=300, ota=None):
        """Report used tokens and store a top-up (janua.chainsync.sync)."""
        from janua.chainsync import sync
        return sync(self, tokens, now, drift_s, ota)

    def present(self, url, now, drift_s=300, timeout=10.0):
        """Authenticate offline to `url` (an edge or the verifier): pick the token for `now`,
        mark it used ON FLASH, then POST /v1/auth/device/offline. The answer (next-token hint)
        on success; AuthError when refused. A token is spent even if the network then fails."""
        from janua.httpreq import call, hostport
        host, port = hostport(url)
        index, i = self.token_for(now, drift_s)
        self.mark_used(index)
        status, out = call(host, port, "POST", "/v1/auth/device/offline",
                           {"token": hexlify(self.slot(i)).decode()}, timeout=timeout)
        if status != 200 or not isinstance(out, dict) or out.get("ok") is not True:
            raise AuthError("offline token %d refused (http %d)" % (index, status))
        return out
