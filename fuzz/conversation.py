"""A recorded DTLS conversation between the device's DTLS client (firmware/janua/dtls.py, run on the
MicroPython unix port) and the verifier's DTLS server (verifier/dtls/, in this process), both with
seeded randomness and a fixed clock, so that it replays byte for byte: the client's datagrams are
seeds for the host DTLS target, the server's for the device DTLS client target.

The exchange: ClientHello, HelloVerifyRequest, ClientHello with the cookie, the ServerHello flight,
the client's ClientKeyExchange/ChangeCipherSpec/Finished, the server's ChangeCipherSpec/Finished,
then three CoAP requests over the channel (POST /auth, GET /config with Accept CBOR, GET
/.well-known/core) and their responses. The MicroPython process is run again for each step, replaying
the server's datagrams so far (each run is deterministic), so no pipe protocol is needed.
"""

import json
import subprocess

from fuzz.world import T0, DetRand, World
from tools.boards import FIRMWARE_DIR, micropython_cmd

ADDR = ("192.0.2.10", 5684)

CLIENT_SCRIPT = r"""
import sys, json
from binascii import hexlify, unhexlify
from hashlib import sha256
from janua.dtls import DTLSClient, OPEN
from janua import coap

class Rand:
    def __init__(self, seed):
        self.seed, self.n, self.buf = seed, 0, b""
    def __call__(self, k):
        while len(self.buf) < k:
            self.buf += sha256(self.seed + self.n.to_bytes(8, "big")).digest()
            self.n += 1
        out, self.buf = self.buf[:k], self.buf[k:]
        return out

cfg = json.loads(open(sys.argv[1]).read())
c = DTLSClient(unhexlify(cfg["identity"]), unhexlify(cfg["psk"]), Rand(b"device"))
out = [c.start()]
for s in cfg["server"]:
    r = c.receive(unhexlify(s))
    out.append(r if r is not None else b"")
if c.state == OPEN and cfg.get("coap"):
    out.append(c.send(coap.encode_request(2, "auth", 1, b"\x01\x02")))
    out.append(c.send(coap.encode(0, 1, 2, b"\x03", [(11, b"config"), (17, bytes((60,)))])))
    out.append(c.send(coap.encode_request(1, ".well-known/core", 3, b"", confirmable=False)))
print(json.dumps({"state": c.state, "out": [hexlify(bytes(x)).decode() for x in out]}))
"""


def _client(workdir, world, server_msgs, coap=False):
    cfg = workdir / "conversation.json"
    cfg.write_text(json.dumps({"identity": world.identity.hex(), "psk": world.psk.hex(),
                               "server": [m.hex() for m in server_msgs], "coap": coap}))
    script = workdir / "conversation_client.py"
    script.write_text(CLIENT_SCRIPT)
    argv, env = micropython_cmd("unix", script, path=[FIRMWARE_DIR])
    p = subprocess.run(argv + [str(cfg)], env=env, cwd=workdir, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError("the MicroPython DTLS client failed: " + p.stdout + p.stderr)
    doc = json.loads(p.stdout.strip().splitlines()[-1])
    return doc["state"], [bytes.fromhex(x) for x in doc["out"]]


def server(world):
    """A fresh deterministic DTLS server (and its auth and CoAP sides) over `world`'s registry."""
    from verifier.dtls.auth import DTLSAuth
    from verifier.dtls.coap import CoAPResources
    from verifier.dtls.server import DTLSServer
    auth = DTLSAuth(world.storage, world.sealer, world.core(), rand=DetRand(b"auth"))
    srv = DTLSServer(auth.lookup, T0, rand=DetRand(b"server"))
    return srv, auth, CoAPResources(auth, rand=DetRand(b"coap"))


def dispatch(srv, coap, datagram, addr, now):
    """What verifier/dtls/driver.py does with one datagram, minus the socket: (replies, events)."""
    from verifier.dtls.server import AppData
    replies, events = srv.receive(datagram, addr, now)
    for ev in events:
        if type(ev) is AppData:
            conn = srv.session(ev.addr)
            if conn is not None:
                resp = coap.handle(conn.grant.context, ev.data, ev.addr, now)
                if resp is not None:
                    replies.append(srv.seal(ev.addr, resp))
    return replies, events


def record(workdir):
    """{"client": [datagrams the device sent], "server": [datagrams the verifier sent]}; cached."""
    cache = workdir / "conversation.out.json"
    if cache.is_file():
        doc = json.loads(cache.read_text())
        return {k: [bytes.fromhex(x) for x in v] for k, v in doc.items()}
    world = World(workdir / "conversation-world")
    srv, auth, coap = server(world)
    sent, got = [], []
    for _ in range(4):
        state, out = _client(workdir, world, got)
        msg = out[-1]
        sent.append(msg)
        replies, _ = dispatch(srv, coap, msg, ADDR, float(T0))
        got.append(b"".join(replies))
        if srv.session(ADDR) is not None:
            break
    state, out = _client(workdir, world, got, coap=True)
    for msg in out[len(sent) + 1:]:
        if not msg:
            continue
        sent.append(msg)
        replies, _ = dispatch(srv, coap, msg, ADDR, float(T0))
        got.append(b"".join(replies))
    world.close()
    cache.write_text(json.dumps({"client": [m.hex() for m in sent], "server": [m.hex() for m in got]}))
    return {"client": sent, "server": got}
