# MicroPython script: the firmware's native `tls` DTLS-PSK client (mbedTLS, GCM suite) against the
# verifier. argv: port identity psk_hex request_hex. Prints "HANDSHAKE OK" then "REPLY <hex>".
import select
import socket
import sys

import tls

port, identity, psk_hex, request_hex = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
addr = socket.getaddrinfo("127.0.0.1", int(port), 0, socket.SOCK_DGRAM)[0][-1]
for attempt in range(4):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.connect(addr)
    ctx = tls.SSLContext(tls.PROTOCOL_DTLS_CLIENT)
    ctx.verify_mode = tls.CERT_NONE
    ctx.psk_identity = identity.encode()
    ctx.psk_key = bytes.fromhex(psk_hex)
    try:
        s = ctx.wrap_socket(udp)
        break
    except OSError as e:
        # the first attempt ends in MBEDTLS_ERR_SSL_HELLO_VERIFY_REQUIRED (docs: loop on it)
        print("attempt", attempt, e)
        udp.close()
else:
    raise SystemExit("handshake failed")
print("HANDSHAKE OK")
s.write(bytes.fromhex(request_hex))
# a blocking read(n) waits for n bytes; a non-blocking one returns the record that is there
s.setblocking(False)
poller = select.poll()
poller.register(s, select.POLLIN)
reply = None
for _ in range(50):
    poller.poll(200)
    reply = s.read(1024)
    if reply:
        break
print("REPLY", reply.hex() if reply else None)
s.close()
