"""A python-mbedtls (Mbed TLS 2.28) DTLS 1.2 PSK server for the device tests: CCM_8 only, cookie
exchange on, one client at a time, driven through the library's sans-IO buffer API on one UDP
socket (as bench/mbedtls_dtls_server.py does). Every application record is answered with
b"pong: " + the data; progress is printed on stdout for the test to wait on.

    python mbedtls_echo_server.py PORT IDENTITY PSK_HEX    (prints "ready PORT")
"""

import socket
import sys

from mbedtls import tls


def main():
    port, identity, psk = int(sys.argv[1]), sys.argv[2], bytes.fromhex(sys.argv[3])
    conf = tls.DTLSConfiguration(pre_shared_key_store={identity: psk},
                                 ciphers=("TLS-PSK-WITH-AES-128-CCM-8",), validate_certificates=False)
    ctx = tls.ServerContext(conf)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    print("ready", sock.getsockname()[1], flush=True)
    over = tls.HandshakeStep.HANDSHAKE_OVER
    buf = None
    done = False

    def flush(addr):
        out = buf.peek_outgoing(8192)
        while out:
            sock.sendto(out, addr)
            buf.consume_outgoing(len(out))
            out = buf.peek_outgoing(8192)

    while True:
        data, addr = sock.recvfrom(4096)
        if buf is None:
            buf = ctx.wrap_buffers()
            buf.setcookieparam(("%s:%d" % addr).encode())
            done = False
        try:
            buf.receive_from_network(data)
            while buf._handshake_state is not over:
                try:
                    buf.do_handshake()
                except tls.WantWriteError:
                    flush(addr)
            if not done:
                done = True
                print("handshake over", buf.cipher(), flush=True)
            got = buf.read(4096)
            if got:
                print("got", got, flush=True)
                buf.write(b"pong: " + got)
        except tls.WantReadError:
            pass
        except tls.HelloVerifyRequest:
            flush(addr)
            buf = None  # the hello with the cookie gets a fresh context
            continue
        except Exception as e:  # noqa: BLE001 - report and serve the next client
            # 0x7880 MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY: the client's close_notify
            print("closed" if "0x7880" in str(e) else "error %s %s" % (type(e).__name__, e), flush=True)
            flush(addr)
            buf = None
            continue
        flush(addr)


if __name__ == "__main__":
    main()
