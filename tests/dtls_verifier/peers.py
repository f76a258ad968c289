"""Blocking DTLS/CoAP peers for the tests, run in a worker thread (the verifier runs in the test's event
loop): a python-mbedtls DTLS client, and CoAP requests built and parsed with aiocoap's codec."""

import socket

from aiocoap import CON, Code, Message


def coap_request(code, path, payload=b"", mid=1, token=b"\x01\x02", accept=None):
    msg = Message(code=code, payload=payload)
    msg.mtype, msg.mid, msg.token = CON, mid, token
    msg.opt.uri_path = tuple(path.strip("/").split("/"))
    if accept is not None:
        msg.opt.accept = accept
    return msg.encode()


class MbedTLSClient:
    """python-mbedtls (Mbed TLS 2.28) DTLS 1.2 PSK client, one suite."""

    def __init__(self, port, identity, psk, suite="TLS-PSK-WITH-AES-128-CCM-8", timeout=10):
        from mbedtls import tls
        conf = tls.DTLSConfiguration(pre_shared_key=(identity, psk), ciphers=(suite,),
                                     validate_certificates=False)
        raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        raw.settimeout(timeout)
        self.sock = tls.ClientContext(conf).wrap_socket(raw, server_hostname=None)
        self.sock.connect(("127.0.0.1", port))

    def handshake(self):
        self.sock.do_handshake()
        return self

    def exchange(self, request):
        self.sock.send(request)
        return Message.decode(self.sock.recv(2048))

    def request(self, code, path, **kw):
        return self.exchange(coap_request(code, path, **kw))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


__all__ = ["MbedTLSClient", "coap_request", "Code"]
