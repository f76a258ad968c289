"""janua.chain on the MicroPython unix port (esp32 profile): storage, choice by time, used state
across reboots and power cuts, atomic top-up, and the flash written per offline use."""

import json
import signal
import socket
import subprocess
import threading

import pytest

from tests.tokens_device.conftest import DAY, DEV, T0, make_chain
from tools.boards import COUNTING_FS

PRELUDE = """
import json, os, sys
from binascii import unhexlify, hexlify
from janua.chain import Chain, ChainError
from janua.store import PosixFS
DEV = unhexlify(%r)
def pick(now, drift=300, ch=None):
    try:
        return (ch or Chain(DEV)).token_for(now, drift)[0]
    except ChainError:
        return None
def new_tokens():
    with open("new.json") as f:
        return json.load(f)
""" % DEV


def seed(mp, tokens, now=T0, acked=()):
    """Top up the board's chain with `tokens` (bytes) through Chain.top_up."""
    (mp.flash / "new.json").write_text(json.dumps([t.hex() for t in tokens]))
    return mp(PRELUDE + "print(json.dumps(Chain(DEV).top_up(new_tokens(), %d, %d, %d, %r)))\n"
              % (DAY, DAY, now, list(acked)))[0]


def test_chain_storage_roundtrip(mp):
    toks = make_chain(0, 30)
    assert seed(mp, toks) == 30
    assert (mp.flash / "chain.bin").stat().st_size == 16 + 30 * 107
    out = mp(PRELUDE + """
ch = Chain(DEV)
print(json.dumps([ch.header(), ch.status(), [hexlify(ch.slot(i)).decode() for i in (0, 17, 29)]]))
""")[0]
    assert out[0] == [0, 30, DAY, DAY]
    assert out[1] == [30, T0, 29]
    assert out[2] == [toks[0].hex(), toks[17].hex(), toks[29].hex()]


@pytest.mark.parametrize("now,drift,used,want", [
    (T0 + 3 * DAY + 5000, 300, [], 3),               # inside token 3's own window
    (T0 + 5 * DAY - 200, 300, [], 4),                # 4 still valid: preferred over 5 (by drift)
    (T0 + 5 * DAY - 200, 300, [4], 5),               # 4 used: 5 accepted within the drift
    (T0 + 5 * DAY - 200, 0, [4], None),              # ... but not without drift
    (T0 + 5 * DAY + 200, 300, [], 5),                # 5 valid: preferred over 4 (expired by 200 s)
    (T0 + 5 * DAY + 200, 300, [5], 4),               # 5 used: 4 within the drift after its exp
    (T0 - 200, 300, [], 0),                          # before the chain: drift lets token 0 through
    (T0 - 400, 300, [], None),                       # ... not beyond the drift
    (T0 + 30 * DAY + 299, 300, [], 29),              # after the last token's exp, within drift
    (T0 + 30 * DAY + 301, 300, [], None),            # chain exhausted
    (T0 + 7 * DAY + 5000, 300, [7], None),           # the one token for now is used
])
def test_token_for_picks_by_time_with_drift(mp, now, drift, used, want):
    seed(mp, make_chain(0, 30))
    got = mp(PRELUDE + """
ch = Chain(DEV)
for i in %r:
    ch.mark_used(i)
print(json.dumps(pick(%d, %d, ch)))
""" % (used, now, drift))[0]
    assert got == want


def test_used_token_is_never_presented_again_after_a_reboot(mp):
    seed(mp, make_chain(0, 30))
    now = T0 + 2 * DAY + 40000
    first = mp(PRELUDE + "ch = Chain(DEV)\ni = pick(%d, 300, ch)\nch.mark_used(i)\nprint(json.dumps(i))\n" % now)[0]
    assert first == 2
    # a new process on the same flash = the board after a reset
    again = mp(PRELUDE + """
ch = Chain(DEV)
try:
    ch.mark_used(2); r = "marked twice"
except ChainError:
    r = "refused"
print(json.dumps([pick(%d), r, sorted(ch.load_used())]))
""" % now)[0]
    assert again == [None, "refused", [2]]


class KillOnRequest:
    """A TCP listener that reads what the board sends and then kills the board (a power cut the
    instant the token goes out)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.proc = None
        self.got = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.sock.accept()
        conn.settimeout(10)
        while b"}" not in self.got:
            chunk = conn.recv(4096)
            if not chunk:
                break
            self.got += chunk
        while self.proc is None:
            pass
        self.proc.send_signal(signal.SIGKILL)
        conn.close()


def test_power_cut_while_sending_leaves_the_token_used(mp):
    toks = make_chain(0, 30)
    seed(mp, toks)
    now = T0 + 4 * DAY + 40000
    srv = KillOnRequest()
    path = mp.workdir / "present.py"
    path.write_text(PRELUDE + "Chain(DEV).present('http://127.0.0.1:%d', %d)\n" % (srv.port, now))
    from tools.boards import FIRMWARE_DIR, micropython_cmd
    argv, env = micropython_cmd("esp32", path, path=[FIRMWARE_DIR, mp.lib])
    srv.proc = subprocess.Popen(argv, env=env, cwd=mp.flash, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    srv.proc.wait(timeout=60)
    srv.thread.join(10)
    assert srv.proc.returncode == -signal.SIGKILL
    assert toks[4].hex().encode() in srv.got          # token 4 went out ...
    out = mp(PRELUDE + "print(json.dumps([pick(%d), sorted(Chain(DEV).load_used())]))\n" % now)[0]
    assert out == [None, [4]]                          # ... and stays used after the cut


def test_cut_before_any_byte_is_sent_still_spends_the_token(mp):
    """mark_used reaches flash before the connection: a refused connect leaves the token used."""
    seed(mp, make_chain(0, 30))
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                          # nobody listens there
    now = T0 + 9 * DAY + 40000
    out = mp(PRELUDE + """
try:
    Chain(DEV).present("http://127.0.0.1:%d", %d); r = "sent"
except OSError:
    r = "network down"
print(json.dumps([r, pick(%d)]))
""" % (port, now, now))[0]
    assert out == ["network down", None]


def test_torn_used_append_is_ignored_and_realigned(mp):
    seed(mp, make_chain(0, 30))
    mp(PRELUDE + "Chain(DEV).mark_used(3)\n")
    with open(mp.flash / "chain.used", "ab") as f:
        f.write(b"\x00")                               # the cut hit the middle of the next append
    out = mp(PRELUDE + """
ch = Chain(DEV)
before = sorted(ch.load_used())
ch.mark_used(6)
print(json.dumps([before, sorted(Chain(DEV).load_used()), os.stat("chain.used")[6]]))
""")[0]
    assert out == [[3], [3, 6], 4]


@pytest.mark.parametrize("cut", ["chain_rename", "chain_write"])
def test_crash_during_top_up_keeps_the_old_chain(mp, cut):
    old = make_chain(0, 30)
    seed(mp, old)
    mp(PRELUDE + "Chain(DEV).mark_used(0)\nChain(DEV).mark_used(1)\n")
    before = (mp.flash / "chain.bin").read_bytes()
    (mp.flash / "new.json").write_text(json.dumps([t.hex() for t in make_chain(30, 5, prev=old[-1])]))
    p = mp.raw(PRELUDE + """
class Cut(PosixFS):
    def open(self, path, mode):
        f = open(path, mode)
        if %r == "chain_write" and path == "chain.bin.tmp":
            f.write(b"JCH1\\x00\\x02")                  # part of the header, then the power goes
            f.flush()
            sys.exit(3)
        return f
    def rename(self, a, b):
        sys.exit(3)                                     # the new chain is complete; no rename
Chain(DEV, fs=Cut()).top_up(new_tokens(), 86400, 86400, %d, [0, 1])
""" % (cut, T0))
    assert p.returncode == 3, p.stdout + p.stderr
    assert (mp.flash / "chain.bin").read_bytes() == before
    out = mp(PRELUDE + "ch = Chain(DEV)\nprint(json.dumps([ch.status(), sorted(ch.load_used()), pick(%d)]))\n"
             % (T0 + 10))[0]
    assert out == [[28, T0 + 2 * DAY, 29], [0, 1], None]  # used stay used; a leftover .tmp is ignored


def test_crash_between_new_chain_and_log_compaction_is_safe(mp):
    old = make_chain(0, 30)
    seed(mp, old)
    mp(PRELUDE + "ch = Chain(DEV)\nfor i in range(25):\n    ch.mark_used(i)\n")
    (mp.flash / "new.json").write_text(json.dumps([t.hex() for t in make_chain(30, 25, prev=old[-1])]))
    p = mp.raw(PRELUDE + """
class Cut(PosixFS):
    def rename(self, a, b):
        if a == "chain.used.tmp":
            sys.exit(3)                                 # chain.bin is new, the log is not compacted
        os.rename(a, b)
Chain(DEV, fs=Cut()).top_up(new_tokens(), 86400, 86400, %d, list(range(25)))
""" % (T0 + 25 * DAY))
    assert p.returncode == 3, p.stdout + p.stderr
    out = mp(PRELUDE + """
ch = Chain(DEV)
print(json.dumps([ch.header(), ch.status(), len(ch.load_used()), pick(%d), pick(%d)]))
""" % (T0 + 24 * DAY + 5, T0 + 25 * DAY + 5))[0]
    assert out[0] == [25, 30, DAY, DAY]                 # used 0..24 left chain.bin
    assert out[1] == [30, T0 + 25 * DAY, 54] and out[2] == 25
    assert out[3] is None and out[4] == 25


def test_top_up_drops_used_and_expired_and_compacts_the_log(mp):
    old = make_chain(0, 30)
    seed(mp, old)
    mp(PRELUDE + "ch = Chain(DEV)\nfor i in (20, 21, 22):\n    ch.mark_used(i)\n")
    now = T0 + 22 * DAY + 100                           # 0..21 expired, 20..22 used
    n = seed(mp, make_chain(30, 22, prev=old[-1]), now=now, acked=[20, 21])
    assert n == 22
    out = mp(PRELUDE + "ch = Chain(DEV)\nprint(json.dumps([ch.header(), sorted(ch.load_used()), pick(%d)]))\n"
             % (T0 + 23 * DAY + 1))[0]
    assert out[0] == [23, 29, DAY, DAY]                 # 23..29 kept, 30..51 added
    assert out[1] == [22]                               # not acknowledged yet: reported again
    assert out[2] == 23
    assert (mp.flash / "chain.bin").stat().st_size == 16 + 29 * 107


def _bad_batches():
    good = make_chain(30, 3, prev=make_chain(0, 30)[-1])
    other = make_chain(30, 3, dev_hex="00" * 8)
    unlinked = make_chain(30, 3)                        # prev of token 30 is not H(token 29)
    return {
        "another_devices_tokens": [t.hex() for t in other],
        "truncated_token": [good[0].hex()[:-2]],
        "wrong_version": ["02" + good[0].hex()[2:]],
        "not_hex": ["zz" * 107],
        "reused_index": [t.hex() for t in make_chain(29, 2)],
        "broken_hash_link": [unlinked[0].hex()],
        "indices_out_of_order": [good[1].hex(), good[0].hex()],
    }


@pytest.mark.parametrize("what", sorted(_bad_batches()))
def test_top_up_refuses_tokens_that_would_corrupt_the_chain(mp, what):
    seed(mp, make_chain(0, 30))
    before = (mp.flash / "chain.bin").read_bytes()
    (mp.flash / "new.json").write_text(json.dumps(_bad_batches()[what]))
    out = mp(PRELUDE + """
try:
    Chain(DEV).top_up(new_tokens(), 86400, 86400, %d); r = "stored"
except ChainError as e:
    r = "refused"
print(json.dumps(r))
""" % T0)[0]
    assert out == "refused"
    assert (mp.flash / "chain.bin").read_bytes() == before


def test_one_offline_use_writes_two_bytes_to_flash(mp):
    seed(mp, make_chain(0, 30))
    out = mp(PRELUDE + """
%sfs = Counting()
ch = Chain(DEV, fs=fs)
sizes = []
for day in (3, 4):
    i, slot = ch.token_for(%d + day * 86400 + 7, 300)
    ch.mark_used(i)
    sizes.append(os.stat("chain.used")[6])
print(json.dumps([fs.written, sizes]))
""" % (COUNTING_FS, T0))[0]
    assert out == [4, [2, 4]]                           # two uses: 2 bytes each, append only
