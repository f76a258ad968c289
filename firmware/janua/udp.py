"""Binary auth over UDP (docs/protocol.md 3.5): one datagram out, replies back, until a verdict.

A thin driver around binauth.Client: it resolves the host, sends the request, listens until its
deadline feeding every datagram (capped in size) to the client, resends with backoff on silence
and sends the client's new request when the server asks for a retry. It does no crypto and
trusts nothing it receives: the client decides.
"""

import socket
import time
from janua import TransportError, health_c
from janua import binauth as _b

_MAX_DATAGRAM = 64  # a reply is at most 25 bytes; a bigger datagram is cut and then rejected


def _resolve(host, port, kind):
    try:
        return socket.getaddrinfo(host, port, 0, kind)[0][-1]
    except OSError as e:
        raise TransportError("cannot resolve %s: %s" % (host, e))


def _ms():
    return time.ticks_ms()


def authenticate(client, host, port=5685, timeout=2.0, resends=2, backoff=2.0, sleep=None):
    """Run `client` to DONE or FAILED over UDP; returns the client. Never raises for silence."""
    addr = _resolve(host, port, socket.SOCK_DGRAM)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(addr)  # the kernel drops datagrams from other sources
        req = client.request()
        wait = timeout
        tries = 0
        while True:
            s.send(req)
            health_c[5] += len(req)
            state = _listen(s, client, wait)
            if state == _b.RETRY:
                req = client.request()
                wait = timeout
                tries = 0
                continue
            if state != _b.WAITING:
                return client
            # Silence until the deadline. An advisory (unauthenticated) answer means the server
            # did hear us: resending would only feed its rate limits.
            if client.advisory is not None or tries >= resends:
                client.give_up("no reply from %s:%d" % (host, port))
                return client
            tries += 1
            if sleep:
                sleep(wait / 4)
            wait = wait * backoff
    except OSError as e:
        client.give_up("network error: %s" % e)
        return client
    finally:
        s.close()


def _listen(s, client, wait):
    # Feed datagrams to the client until it leaves WAITING or `wait` seconds pass.
    start = _ms()
    budget = int(wait * 1000)
    while True:
        left = budget - time.ticks_diff(_ms(), start)
        if left <= 0:
            return client.state
        s.settimeout(left / 1000)
        try:
            data = s.recv(_MAX_DATAGRAM)
        except OSError as e:
            # ETIMEDOUT/EAGAIN on timeout; ECONNREFUSED after an ICMP port-unreachable.
            if e.args and e.args[0] == 111:
                raise
            return client.state
        health_c[6] += len(data)
        state = client.receive(data)
        if state != _b.WAITING:
            return state
