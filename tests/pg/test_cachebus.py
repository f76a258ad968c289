"""verifier/cachebus.py's payloads, applied to a core that records what it is told (no database): a drop from
another instance reaches the core once, our own is skipped, a malformed one is ignored, and applying one does
not publish it again."""

from verifier.cachebus import CacheBus


class Core:
    def __init__(self):
        self.calls, self.listeners = [], []

    def forget(self, did):
        self.calls.append(("d", did))
        for x in self.listeners:
            x.forget(did)

    def forget_tenant(self, t):
        self.calls.append(("t", t))
        for x in self.listeners:
            x.forget_tenant(t)

    def forget_all(self):
        self.calls.append(("*",))
        for x in self.listeners:
            x.forget_all()


def bus():
    core = Core()
    b = CacheBus("postgresql://unused", core)
    b.instance = "aaaaaaaaaaaa"
    sent = []
    b._pub = type("Pub", (), {"execute": lambda self, sql, args: sent.append(args[1])})()
    core.listeners.append(b)
    return b, core, sent


def test_remote_drops_reach_the_core_and_are_not_published_again():
    b, core, sent = bus()
    b.apply("bbbbbbbbbbbb d 0102030405060708")
    b.apply("bbbbbbbbbbbb t tenant-7")
    b.apply("bbbbbbbbbbbb *")
    assert core.calls == [("d", bytes.fromhex("0102030405060708")), ("t", "tenant-7"), ("*",)]
    assert sent == [] and b.received == 3


def test_our_own_and_malformed_payloads_are_ignored():
    b, core, sent = bus()
    b.apply("aaaaaaaaaaaa d 0102030405060708")
    b.apply("bbbbbbbbbbbb d not-hex")
    b.apply("bbbbbbbbbbbb x y")
    b.apply("garbage")
    assert core.calls == [] and b.received == 0


def test_a_local_drop_is_published_with_our_instance_id():
    b, core, sent = bus()
    core.forget(bytes.fromhex("0a0b0c0d0e0f1011"))
    core.forget_tenant("t1")
    core.forget_all()
    assert sent == ["aaaaaaaaaaaa d 0a0b0c0d0e0f1011", "aaaaaaaaaaaa t t1", "aaaaaaaaaaaa *"]
