"""The peer reference for verifier.dtls.handshakes_per_s: a python-mbedtls (Mbed TLS 2.28) DTLS 1.2 PSK
server, TLS_PSK_WITH_AES_128_CCM_8 only, cookie exchange on, accepting handshakes in a loop.

One UDP socket, one Mbed TLS context per client address (its sans-IO buffer API), so it serves many
concurrent clients the way the verifier does. A ClientHello in epoch 0 to an address whose handshake
is over starts a new handshake there. Contexts are dropped after a HelloVerifyRequest (the next hello
comes back with the cookie, which Mbed TLS checks statelessly), on close_notify or on any error.

    python bench/mbedtls_dtls_server.py PORT IDENTITY PSK_HEX    (prints "ready PORT")
"""

import socket
import sys

from mbedtls import tls


def main():
    port, identity, psk = int(sys.argv[1]), sys.argv[2], bytes.fromhex(sys.argv[3])
    conf = tls.DTLSConfiguration(pre_shared_key_store={identity: psk}, ciphers=("TLS-PSK-WITH-AES-128-CCM-8",),
                                 validate_certificates=False)
    ctx = tls.ServerContext(conf)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", port))
    print("ready", sock.getsockname()[1], flush=True)
    conns = {}
    over = tls.HandshakeStep.HANDSHAKE_OVER

    def flush(buf, addr):
        out = buf.peek_outgoing(8192)
        while out:
            sock.sendto(out, addr)
            buf.consume_outgoing(len(out))
            out = buf.peek_outgoing(8192)

    while True:
        data, addr = sock.recvfrom(4096)
        buf = conns.get(addr)
        if buf is not None and data[:1] == b"\x16" and data[3:5] == b"\x00\x00" and buf._handshake_state is over:
            buf = None                                   # a new handshake from the same address
        if buf is None:
            buf = ctx.wrap_buffers()
            buf.setcookieparam(f"{addr[0]}:{addr[1]}".encode())
            conns[addr] = buf
        try:
            buf.receive_from_network(data)
            if buf._handshake_state is over:
                buf.read(4096)
            while buf._handshake_state is not over:
                try:
                    buf.do_handshake()
                except tls.WantWriteError:
                    flush(buf, addr)                     # Mbed TLS wants its flight out before going on
        except tls.WantReadError:
            pass
        except tls.HelloVerifyRequest:
            del conns[addr]                              # raised once the HVR is out: the hello with
        except Exception:                                # the cookie gets a fresh context
            conns.pop(addr, None)
        flush(buf, addr)

if __name__ == "__main__":
    main()
