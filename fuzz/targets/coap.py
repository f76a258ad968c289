"""CoAP handling on the DTLS channel (verifier/dtls/coap.py): CoAPResources.handle for an
established session of the provisioned device, on a real registry. An input is one message (the
plaintext of an application-data record). handle() documents no exception: junk gets no answer
(None), anything else a response message, and what it returns must itself parse as CoAP.
"""

from aiocoap import CON, NON, Code, Message
from aiocoap.numbers import ContentFormat

from fuzz.harness import check
from fuzz.world import T0, DetRand, World
from verifier.dtls.auth import DeviceRef, DTLSAuth
from verifier.dtls.coap import CoAPResources

ALLOWED = ()


class _Rollback(Exception):
    pass


def make(workdir):
    world = World(workdir + "/world")
    storage = world.storage
    auth = DTLSAuth(storage, world.sealer, world.core(), rand=DetRand(b"auth"))
    ref = DeviceRef(world.device_id, world.tenant_id, "active")

    def one_input(data):
        coap = CoAPResources(auth, rand=DetRand(b"coap"))
        try:
            with storage.transaction():
                resp = coap.handle(ref, data, ("192.0.2.10", 5684), float(T0))
                auth.flush()
                raise _Rollback
        except _Rollback:
            pass
        if resp is not None:
            check(type(resp) is bytes and len(resp) <= 2048, "response not bytes or too long")
            Message.decode(resp)

    return one_input


def seeds(workdir):
    out = []
    for mtype, code, path, accept in ((CON, Code.POST, ("auth",), None), (NON, Code.POST, ("auth",), 60),
                                      (CON, Code.GET, ("config",), 60), (CON, Code.GET, ("ota",), None),
                                      (CON, Code.GET, ("commands",), None), (CON, Code.POST, ("telemetry",), None),
                                      (CON, Code.GET, (".well-known", "core"), None),
                                      (CON, Code.PUT, ("config",), None), (CON, Code.GET, ("nothing",), None)):
        m = Message(mtype=mtype, code=code, mid=0x1234, token=b"\x7a\x01")
        m.opt.uri_path = path
        if accept is not None:
            m.opt.accept = ContentFormat(accept)
        if code == Code.POST:
            m.payload = b'{"t":21.5}'
            m.opt.content_format = ContentFormat.JSON
        out.append(m.encode())
    return out
