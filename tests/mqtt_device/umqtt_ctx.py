# Test double of umqtt.simple >= 1.4 (micropython-lib), installed on the test board as
# lib/umqtt/simple.py: the constructor takes `ssl=<SSLContext>` (no ssl_params) and connect() wraps
# the socket with ssl.wrap_socket(sock, server_hostname=<server>), as the current release does.
# Only 1.3.4 is on PyPI, so the protocol code is 1.3.4's (lib/umqtt_134.py); this file changes the
# TLS hand-off and nothing else.
import sys
from umqtt_134 import MQTTClient as _Old, MQTTException  # noqa: F401 (re-exported)


class _Wrap:
    # What 1.3.4's connect() gets from `import ussl`: it calls wrap_socket(sock, **ssl_params).
    def __init__(self, client):
        self.client = client

    def wrap_socket(self, sock, **_):
        c = self.client
        return c.ssl.wrap_socket(sock, server_hostname=c.server)


class MQTTClient(_Old):
    def __init__(self, client_id, server, port=0, user=None, password=None, keepalive=0, ssl=None):
        if port == 0:
            port = 8883 if ssl else 1883
        _Old.__init__(self, client_id, server, port, user, password, keepalive, ssl=ssl, ssl_params={})
        self.context_api = True   # lets a test see which shape ran

    def connect(self, clean_session=True):
        saved = sys.modules.get("ussl")
        sys.modules["ussl"] = _Wrap(self)
        try:
            return _Old.connect(self, clean_session)
        finally:
            if saved is None:
                del sys.modules["ussl"]
            else:
                sys.modules["ussl"] = saved
