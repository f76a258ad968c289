# The device-side fuzzer: runs ON the MicroPython unix port (fuzz/device.py starts it with a board
# profile's heap). A seeded xorshift PRNG and a byte mutator (bit flips, byte sets, interesting
# values, inserts, deletes, duplicated and spliced chunks, truncation, and 1 input in 16 wholly
# random) turn the seeds into inputs; each target feeds them to one device parser, and only that
# module's own error classes may come out. Anything else (MemoryError on the board heap included)
# is a crash, as is one input taking over SLOW_MS. Prints one JSON line: executions, crashes (the
# first few with their input), seconds, the peak of gc.mem_alloc() sampled after every input, the
# slowest input.
import sys
import gc
import json
import time
from binascii import hexlify, unhexlify

SEP = b"\xa5JF\x5a"
SLOW_MS = 2000
MAX_KEPT = 5
INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0xFE, 12, 13, 16, 20, 25)


class PRNG:
    def __init__(self, seed):
        self.s = (seed * 2654435761 + 1) & 0xFFFFFFFF or 1

    def next(self):
        x = self.s
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.s = x
        return x

    def below(self, n):
        return self.next() % n if n > 0 else 0


def mutate(r, seeds, maxlen=2048):
    # bytes are rebuilt by concatenation (MicroPython's bytearray has no slice deletion)
    if r.below(16) == 0:
        return bytes(r.below(256) for _ in range(r.below(64)))
    b = bytes(seeds[r.below(len(seeds))])
    for _ in range(1 + r.below(4)):
        n = len(b)
        op = r.below(9)
        i = r.below(n) if n else 0
        if op == 0 and n:
            b = b[:i] + bytes((b[i] ^ (1 << r.below(8)),)) + b[i + 1:]
        elif op == 1 and n:
            b = b[:i] + bytes((r.below(256),)) + b[i + 1:]
        elif op == 2 and n:
            b = b[:i] + bytes((INTERESTING[r.below(len(INTERESTING))],)) + b[i + 1:]
        elif op == 3 and n < maxlen:
            i = r.below(n + 1)
            b = b[:i] + bytes((r.below(256),)) + b[i:]
        elif op == 4 and n:
            b = b[:i] + b[i + 1 + r.below(8):]
        elif op == 5 and n:
            k = r.below(n + 1)
            b = b[:k] + b[i:i + 1 + r.below(16)] + b[k:]
        elif op == 6 and n:
            b = b[:i]
        elif op == 7:
            other = seeds[r.below(len(seeds))]
            if other:
                j = r.below(len(other))
                k = r.below(n + 1)
                b = b[:k] + other[j:j + 1 + r.below(32)] + b[k + r.below(16):]
        elif op == 8 and n >= 2:
            i = r.below(n - 1)
            v = r.below(0x10000)
            b = b[:i] + bytes((v >> 8, v & 0xFF)) + b[i + 2:]
    return b[:maxlen]


class Rand:
    # the seeded randomness the DTLS client is given (the same as fuzz/conversation.py's)
    def __init__(self, seed):
        from hashlib import sha256
        self.h, self.seed, self.n, self.buf = sha256, seed, 0, b""

    def __call__(self, k):
        while len(self.buf) < k:
            self.buf += self.h(self.seed + self.n.to_bytes(8, "big")).digest()
            self.n += 1
        out, self.buf = self.buf[:k], self.buf[k:]
        return out


# -- targets: setup(ctx) -> (one_input(data), allowed exception classes) -------------------------

def t_binauth(ctx):
    from janua import PacketError, AuthError
    from janua import packet
    from janua.binauth import Client
    from janua.clock import Clock
    from janua.mac import HMAC
    mac = HMAC(unhexlify(ctx["key"]))
    did = unhexlify(ctx["device_id"])
    t = [ctx["now"]]

    def one(data):
        req, reply = data[:20], data[20:]
        try:
            packet.decode_reply(req, reply, mac)
        except PacketError:
            pass
        # the client's request is the vectors' (same device, key and time): their replies verify
        c = Client(did, mac, Clock(lambda: t[0], 0))
        c.request()
        c.receive(reply)
        c.receive(reply)          # a second reply: nothing is expected any more (AuthError) or ignored
    return one, (PacketError, AuthError)


def t_coap(ctx):
    from janua import PacketError
    from janua import coap

    def one(data):
        t, code, mid, token, opts, payload = coap.decode(data)
        coap.option(opts, 11)
        coap.option(opts, 12, 0)
        # what decodes must encode again, and decode to the same message
        again = coap.decode(coap.encode(t if t < 4 else 0, code, mid, token, opts, payload))
        if again[1] != code or again[3] != token or again[4] != opts or again[5] != payload:
            raise ValueError("re-encoding changed the message")
    return one, (PacketError,)


def t_dtls(ctx):
    from janua import DTLSError
    from janua.dtls import DTLSClient
    from janua import coap
    from janua import PacketError
    ident, psk = unhexlify(ctx["identity"]), unhexlify(ctx["psk"])
    flights = [unhexlify(x) for x in ctx["server"]]

    def one(data):
        # the recorded server datagrams in order, one of them (chosen by the input, so that a crash
        # replays from its input alone) replaced by the mutated input
        c = DTLSClient(ident, psk, Rand(b"device"))
        c.start()
        h = len(data) + (data[-1] if data else 0)
        k = h % len(flights)
        for i, d in enumerate(flights):
            c.receive(data if i == k else d)
            if i >= k and h & 64:
                break
        for m in c.inbox:
            try:
                coap.decode(m)
            except PacketError:
                pass
        if c.state == 5:
            c.send(b"x")
            c.close()
    return one, (DTLSError,)


def t_manifest(ctx):
    from janua import OTAError
    from janua import manifest
    keys = {ctx["kid"]: unhexlify(ctx["pub"])}
    device = {"board": "esp32", "hw": 2, "mp": (1, 29, 0)}
    n = [0]

    def probe():
        return {"tls": True, "dtls": True, "hashlib": ["sha256"]}

    def one(data):
        m_bytes, _, sig = data.partition(SEP)
        n[0] += 1
        if n[0] % 64 == 0:        # the Ed25519 check costs milliseconds: now and then
            manifest.verify_signature(m_bytes, sig, keys)
        try:
            m = json.loads(m_bytes)
        except ValueError:
            return                # verify_manifest turns this into OTAError
        manifest.check_manifest(m)
        manifest.check_compat(m, device, probe)
    return one, (OTAError,)


class MemFS:
    # the flash in RAM (the store's fs interface: open, rename, remove, sync), so that an input
    # costs no real file writes; chain.py reads and writes it as it would the board's flash
    def __init__(self):
        self.files = {}

    def open(self, path, mode):
        return MemFile(self, path, mode)

    def rename(self, src, dst):
        if src not in self.files:
            raise OSError(2)
        self.files[dst] = self.files.pop(src)

    def remove(self, path):
        if self.files.pop(path, None) is None:
            raise OSError(2)

    def sync(self):
        pass


class MemFile:
    def __init__(self, fs, path, mode):
        import io
        if "r" in mode and path not in fs.files:
            raise OSError(2)
        self.fs, self.path, self.w = fs, path, "w" in mode or "a" in mode
        self.b = io.BytesIO(b"" if "w" in mode else fs.files.get(path, b""))
        if "a" in mode:
            self.b.seek(0, 2)

    def read(self, n=-1):
        return self.b.read(n)

    def readinto(self, buf):
        return self.b.readinto(buf)

    def seek(self, off, whence=0):
        return self.b.seek(off, whence)

    def write(self, data):
        return self.b.write(data)

    def flush(self):
        if self.w:
            self.fs.files[self.path] = self.b.getvalue()

    def close(self):
        self.flush()


def t_chain(ctx):
    from janua import StoreError
    from janua.chain import Chain, ChainError
    did = unhexlify(ctx["device_id"])
    now = ctx["now"]

    def one(data):
        parts = data.split(SEP)
        fs = MemFS()
        fs.files["chain.bin"] = parts[0]
        if len(parts) > 1:
            fs.files["chain.used"] = parts[1]
        c = Chain(did, fs)
        c.header()
        c.status(now)
        try:
            index, slot = c.token_for(now)
        except ChainError:
            return
        c.slot(slot)
        c.mark_used(index)
        c.load_used()
    return one, (ChainError, StoreError)


def t_attest(ctx):
    # What a verifier (or anyone on the broker) sends an attesting board: an MQTT attest command, and a
    # challenge or answer body (HTTP, CoAP). The evidence a valid command makes must carry its nonce.
    from janua.attest import Attester, AttestError
    from janua.attestnet import answer_of, mqtt_command, nonce_of
    from janua.mqtt import Session
    sent = []

    class Client:
        # the surface of umqtt.simple that Session uses
        def set_callback(self, f):
            pass

        def publish(self, topic, msg, retain, qos):
            sent.append(bytes(msg))
    s = Session(Client(), OSError, "janua/t1/" + ctx["device_id"], "ctx")
    att = Attester({"device_id": ctx["device_id"], "master_secret": ctx["master"]}, pkg="")

    def one(data):
        del sent[:]
        try:
            if mqtt_command(s, s.topic("cmd"), data, att, ctx["now"]):
                ev = sent[0]
                if len(sent) != 1 or ev[0] != 1 or ev[9:25] != unhexlify(json.loads(data)["nonce"]):
                    raise ValueError("published evidence does not answer the command's nonce")
            elif sent:
                raise ValueError("published without an attest command")
        except AttestError:
            if sent:
                raise ValueError("published, then refused")
        n = nonce_of(answer_of(data, "fuzz"))
        if len(n) != 16:
            raise ValueError("a nonce of %d bytes" % len(n))
    return one, (AttestError,)


def t_claim(ctx):
    # janua.claim.open_answer on mutated answers as they come, and again re-tagged under K_mac (so the
    # checks after the tag, the decryption and the config's JSON, see mutated input too); the refusal
    # line from a mutated error body, which must never raise
    from janua import ClaimError
    from janua.claim import open_answer, refusal
    from janua.mac import HMAC
    key, nonce = unhexlify(ctx["key"]), unhexlify(ctx["nonce"])
    mac = HMAC(unhexlify(ctx["mac"]))

    def one(data):
        try:
            open_answer(key, nonce, data)
        except ClaimError:
            pass
        if len(data) >= 76:
            body = data[:-16]
            try:
                open_answer(key, nonce, body + mac.digest(nonce, body)[:16])
            except ClaimError:
                pass
        line = refusal(403, data)
        if not line.startswith("refused: "):
            raise ValueError("refusal line %r" % line)
    return one, (ClaimError,)


TARGETS = {"binauth": t_binauth, "claim": t_claim, "coap": t_coap, "dtls": t_dtls, "manifest": t_manifest, "chain": t_chain,
           "attest": t_attest}


def main():
    cfg = json.loads(open(sys.argv[1]).read())
    r = PRNG(cfg["seed"])
    seeds = [unhexlify(s) for s in cfg["seeds"]] or [b""]
    one, allowed = TARGETS[cfg["target"]](cfg.get("ctx", {}))
    runs, budget_ms = cfg.get("runs") or 0, int((cfg.get("seconds") or 0) * 1000)
    t0 = time.ticks_ms()
    n = crashes = peak = slowest = 0
    kept = []
    kinds = {}
    gc.collect()
    base = gc.mem_alloc()
    while True:
        if runs and n >= runs:
            break
        if budget_ms and time.ticks_diff(time.ticks_ms(), t0) >= budget_ms:
            break
        data = seeds[n] if n < len(seeds) else mutate(r, seeds)
        n += 1
        t1 = time.ticks_ms()
        err = None
        try:
            one(data)
        except allowed:
            pass
        except Exception as e:      # MemoryError included: the board heap is the memory check
            err = "%s: %s" % (type(e).__name__, e)
        dt = time.ticks_diff(time.ticks_ms(), t1)
        if dt > slowest:
            slowest = dt
        if err is None and dt > SLOW_MS:
            err = "SlowInput: %d ms" % dt
        a = gc.mem_alloc() - base
        if a > peak:
            peak = a
        if err is not None:
            crashes += 1
            kinds[err[:160]] = kinds.get(err[:160], 0) + 1
            if len(kept) < MAX_KEPT:
                kept.append({"error": err[:300], "input_hex": hexlify(data).decode()})
        if n % 64 == 0:
            gc.collect()
    secs = time.ticks_diff(time.ticks_ms(), t0) / 1000
    print(json.dumps({"executions": n, "crashes": crashes, "crash_kinds": kinds, "kept": kept,
                      "seconds": secs, "peak_heap_bytes": peak, "slowest_ms": slowest}))


main()
