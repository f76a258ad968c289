"""MQTT numbers for `make bench` (bench/run.py runs it; alone: `python bench/mqtt_device.py`; prints JSON).

The board is the MicroPython unix port with the esp32 profile's heap, running the firmware as shipped
(.mpy, tools/build.py) and umqtt.simple 1.3.4 compiled the same way, against a real mosquitto on
loopback with the config the verifier generates (verifier/mqtt/broker.py: TLS 1.2, mutual TLS,
require_certificate, CRL). The device certificate is ECDSA P-256 from the tenant CA.

- device.mqtt.connect_ms: median of 15 janua.mqtt.connect() calls (TCP + mutual-TLS handshake + MQTT
  CONNECT/CONNACK), after one warm-up connect; unix port on this host, not a board.
- device.mqtt.peak_heap_bytes: MicroPython GC heap used by one connect, TLS handshake included,
  measured as gc.mem_alloc() growth with the collector disabled from a gc.collect() to the CONNACK:
  nothing is freed in between, so this is an upper bound of the peak.
- device.mqtt.native_heap_bytes: what the same first connect made the process's data segment grow
  (VmData of /proc/self/status, page granularity): mbedTLS (context, record buffers, X.509 parsing)
  allocates with libc malloc on the unix port, outside the GC heap; on an ESP32 it allocates from
  the IDF heap, also outside the GC heap. An upper bound including malloc's arena slack.
- device.mqtt.mpy_bytes: .mpy bytes of janua's MQTT path (janua/__init__, mqtt, mqtt_tls);
  device.mqtt.umqtt_mpy_bytes: umqtt/simple.mpy, the dependency mip installs beside it.
"""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.boards import micropython_cmd  # noqa: E402
from tools.build import build_firmware, compile_mpy, mpy_size  # noqa: E402

UMQTT = ROOT / ".venv" / "mplib" / "umqtt" / "simple.py"
MODULES = ["__init__", "mqtt", "mqtt_tls"]
ROUNDS = 15

SCRIPT = """
import gc, json, time
from janua.store import Store
from janua import mqtt
from umqtt import simple

def vmdata():
    for ln in open("/proc/self/status"):
        if ln.startswith("VmData:"):
            return int(ln.split()[1]) * 1024
    return 0

cfg = Store().load_config()
gc.collect()
v0 = vmdata()
base = gc.mem_alloc()
gc.disable()
s = mqtt.connect(cfg)
grown = gc.mem_alloc() - base
gc.enable()
native = vmdata() - v0
s.publish("bench", b"x")
s.close()
ts = []
for i in range(%d):
    gc.collect()
    t = time.ticks_us()
    s = mqtt.connect(cfg)
    ts.append(time.ticks_diff(time.ticks_us(), t))
    s.close()
ts.sort()
gc.collect()
print(json.dumps({"grown": grown, "native": native, "median_us": ts[len(ts) // 2], "heap_free": gc.mem_free()}))
"""


def _setup(work):
    """A registry with one tenant and device, the broker config, the device's flash: (cfg dict, conf dir)."""
    from tests.mosquitto import free_port
    from verifier import keys
    from verifier.registry import core as registry
    from verifier.mqtt import broker as mb
    from verifier.mqtt import x509 as vx
    from verifier.store import SQLiteStorage
    now = int(time.time())
    st = SQLiteStorage(str(work / "janua.db"))
    sealer = keys.Sealer(bytes(range(32)))
    tenant = registry.create_tenant(st, "bench", now)
    conf = mb.write_config(st, sealer, work / "broker", now, base_port=free_port())
    r = registry.provision_bulk(st, sealer, tenant["id"], [{"serial_number": "BENCH-MQTT"}], now)["results"][0]
    ca = vx.TenantCA.load(st, sealer, tenant)
    cert, key = vx.issue_device(ca.cert, ca.key, r["device_id"], "bench", now)
    st.close()
    flash = work / "flash"
    flash.mkdir()
    (flash / "janua_cert.der").write_bytes(vx.cert_der(cert))
    (flash / "janua_key.der").write_bytes(vx.key_der(key))
    (flash / "janua_ca.der").write_bytes(vx.cert_der(ca.cert))
    cfg = {"device_id": r["device_id"], "master_secret": r["master_secret"], "server": {"host": "127.0.0.1"},
           "mqtt": {"host": "127.0.0.1", "port": conf["tenants"]["bench"],
                    "topic_prefix": mb.topic_prefix(tenant["id"], r["device_id"])}}
    (flash / "janua.json").write_text(json.dumps(cfg))
    return flash


def run(results, say):
    from tests.mosquitto import Mosquitto
    if not UMQTT.is_file():
        raise RuntimeError("umqtt.simple is missing: run `make mplib`")
    with tempfile.TemporaryDirectory(prefix="janua-mqtt-bench-") as d:
        work = Path(d)
        build_firmware(work / "fw", "unix")
        lib = work / "fw" / "lib"
        (lib / "umqtt").mkdir(parents=True, exist_ok=True)
        compile_mpy(UMQTT, lib / "umqtt" / "simple.mpy", "umqtt/simple.py")
        results["device.mqtt.mpy_bytes"] = mpy_size([lib / "janua" / (m + ".mpy") for m in MODULES])
        results["device.mqtt.umqtt_mpy_bytes"] = mpy_size([lib / "umqtt" / "simple.mpy"])
        flash = _setup(work)
        script = work / "bench_mqtt.py"
        script.write_text(SCRIPT % ROUNDS)
        with Mosquitto(work / "mq", conf=work / "broker"):
            argv, env = micropython_cmd("esp32", script, path=[lib])
            p = subprocess.run(argv, env=env, cwd=flash, capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise RuntimeError("mqtt device bench failed: " + p.stdout + p.stderr)
        r = json.loads(p.stdout.strip().splitlines()[-1])
    results["device.mqtt.connect_ms"] = round(r["median_us"] / 1000, 2)
    results["device.mqtt.peak_heap_bytes"] = r["grown"]
    results["device.mqtt.native_heap_bytes"] = r["native"]
    say(f"device.mqtt: connect {results['device.mqtt.connect_ms']} ms (median of {ROUNDS}, mutual TLS P-256, "
        f"loopback, unix port), GC heap {r['grown']} B (gc off, upper bound), mbedTLS native ~{r['native']} B, "
        f"{results['device.mqtt.mpy_bytes']} mpy bytes + umqtt {results['device.mqtt.umqtt_mpy_bytes']}")


if __name__ == "__main__":
    out = {}
    run(out, lambda m: print(m, file=sys.stderr))
    print(json.dumps(out, indent=1, sort_keys=True))
