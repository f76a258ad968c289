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





class MbedTLSTimedClient:
    """python-mbedtls DTLS PSK client driven through its buffer API with a short receive timeout, so
    that Mbed TLS's handshake timers run (its blocking socket wrapper waits in recv() forever and so
    never retransmits a lost flight). `budget_s` bounds the whole handshake."""

    def __init__(self, port, identity, psk, suite="TLS-PSK-WITH-AES-128-CCM-8", budget_s=20.0, tick_s=0.05):
        from mbedtls import tls
        self._tls = tls
        conf = tls.DTLSConfiguration(pre_shared_key=(identity, psk), ciphers=(suite,), validate_certificates=False,
                                     handshake_timeout_min=1.0, handshake_timeout_max=60.0)
        self.buf = tls.ClientContext(conf).wrap_buffers(server_hostname=None)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(("127.0.0.1", port))
        self.sock.settimeout(tick_s)
        self.budget_s = budget_s

    def _flush(self):
        while True:
            out = self.buf.peek_outgoing(4096)
            if not out:
                return
            self.sock.send(out)
            self.buf.consume_outgoing(len(out))

    def _pump(self, step, deadline):
        import time
        while True:
            try:
                step()
                self._flush()
                if self.buf._handshake_state is self._tls.HandshakeStep.HANDSHAKE_OVER:
                    return
                continue                              # one step at a time: go on while it progresses
            except (self._tls.WantReadError, self._tls.WantWriteError):
                self._flush()
            if time.monotonic() > deadline:
                raise TimeoutError("DTLS budget exhausted")
            try:
                self.buf.receive_from_network(self.sock.recv(4096))
            except socket.timeout:
                pass                                  # let Mbed TLS look at its timer on the next step

    def handshake(self):
        import time
        self._pump(self.buf.do_handshake, time.monotonic() + self.budget_s)
        return self

    def exchange(self, request, retransmit_s=1.0, attempts=5):
        """One CoAP request, resent (same message id) until a reply comes, as a CON request is."""
        import time
        for _ in range(attempts):
            self.buf.write(request)
            self._flush()
            deadline = time.monotonic() + retransmit_s
            while time.monotonic() < deadline:
                try:
                    self.buf.receive_from_network(self.sock.recv(4096))
                except socket.timeout:
                    continue
                try:
                    data = self.buf.read(2048)
                except self._tls.WantReadError:
                    continue
                if data:
                    return Message.decode(data)
        raise TimeoutError("no CoAP reply")

    def request(self, code, path, **kw):
        return self.exchange(coap_request(code, path, **kw))

    def close(self):
        try:
            self.buf.shutdown()
            self._flush()
        except Exception:
            pass
        self.sock.close()
__all__ = ["MbedTLSClient", "MbedTLSTimedClient", "coap_request", "Code"]
