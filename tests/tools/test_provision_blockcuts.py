"""The provisioning write of `janua provision --port` (tools.mpremote_util.write_file_atomic: mpremote
copies janua.json.tmp onto the board, then renames it over janua.json) cut at every block write of the
virtual esp32's emulated flash chip (VirtualBoard.arm_cut). After each cut the board powers up, LittleFS
mounts, and janua.json is the old configuration or the new one, whole. test_provision_cli.py kills the
board at wall-clock moments of the whole CLI run."""

import json
import os
import signal
import threading
import time

import pytest

from tools import mpremote_util
from tools.errors import CLIError
from tools.vboard import VirtualBoard

OLD = {"device_id": "3f9a0c1b7d2e4a65", "tenant": "acme", "master_secret": "00" * 32,
       "server": {"host": "127.0.0.1", "udp_port": 5685, "http_port": 8080}, "transport": "udp"}
NEW = dict(OLD, device_id="9e8d7c6b5a493827", master_secret="11" * 32, transport="http")


def _mpremotes(port):
    """The mpremote processes this test process started for `port` (its own children, by pid)."""
    pids = []
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as f:
            pids += [int(p) for p in f.read().split()]
    out = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"mpremote") for a in argv) and port.encode() in argv:
            out.append(pid)
    return out


def write_cut(vb, n, data, torn=False):
    """write_file_atomic with the power cut armed at write n: True when the board was cut. A board that
    lost power leaves mpremote waiting for an answer: it is ended then (by its pid), as a user would."""
    before = len(vb.resets)
    done = threading.Event()

    def watch():
        while not done.is_set():
            if len(vb.resets) > before and vb.resets[-1][0] == "cut":
                for pid in _mpremotes(vb.port):
                    os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.01)
    vb.arm_cut(n, torn)                  # taken by the interpreter mpremote's soft reset starts
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        mpremote_util.write_file_atomic(vb.port, "janua.json", data, timeout=30)
        cut = False
    except CLIError:
        cut = True
    finally:
        done.set()
        t.join(5)
    # a failed write is the armed cut (the board says so), never some other error
    assert cut == any(kind == "cut" for kind, _ in vb.resets[before:]), (n, torn, vb.resets[before:])
    return cut


def _cut_and_boot(vb, saved, n, torn):
    """From the board as `saved`, cut the write of NEW at write n: janua.json after the next power-up
    (None when the write finished uncut)."""
    vb.kill()
    vb.flash.image.write_bytes(saved)        # the board as provisioned with OLD
    vb.restart()
    assert vb.wait_repl(10)
    if not write_cut(vb, n, json.dumps(NEW).encode(), torn):
        return None
    vb.restart()                             # power back: LittleFS mounts the cut image
    assert vb.wait_repl(10), (n, torn)
    vb.kill()
    got = json.loads((vb.root / "janua.json").read_text())
    assert got in (OLD, NEW), (n, torn, got)
    return got["device_id"]


@pytest.fixture
def board(tmp_path):
    with VirtualBoard("esp32", tmp_path / "flash") as vb:
        mpremote_util.write_file_atomic(vb.port, "janua.json", json.dumps(OLD).encode())
        vb.kill()
        yield vb, vb.flash.image.read_bytes()


def test_block_cut_at_every_write_of_the_provisioning_write(board):
    vb, saved = board
    seen = []
    for n in range(1, 60):
        got = _cut_and_boot(vb, saved, n, False)
        if got is None:
            break
        seen += [got, _cut_and_boot(vb, saved, n, True)]
    else:
        raise AssertionError("the write did not finish within 59 block writes")
    assert json.loads((vb.root / "janua.json").read_text()) == NEW       # the uncut write
    # 6 writes: mpremote's copy (the .tmp's creation, data and commits) and the rename's commit, the
    # last one. Each cut (plain and torn) leaves the old config whole; only the finished write the new.
    assert n == 7 and seen == [OLD["device_id"]] * 12, (n, seen)


@pytest.mark.slow
def test_random_block_cuts_of_provisioning_writes(board):
    from tests.blockcuts import rng
    vb, saved = board
    rnd = rng()
    for _ in range(20):
        n, torn = rnd.randint(1, 6), rnd.random() < 0.5
        assert _cut_and_boot(vb, saved, n, torn) == OLD["device_id"], (n, torn)
