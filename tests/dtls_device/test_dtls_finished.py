"""The device's DTLS client (firmware/janua/dtls.py) on the MicroPython unix port (esp32 heap) against a
server whose Finished decrypts under the right keys but carries the wrong verify_data: a man in the
middle added an extension to the ServerHello (the client ignores unknown extensions, so only the
transcript tells), or the verify_data is simply wrong. The server side is played in the same script
by a second record layer with the keys swapped: real records, real handshake messages, no fakes."""

import pytest

SCRIPT = """
import json
from hashlib import sha256
from janua import DTLSError
from janua.dtls import DTLSClient, _hs
from janua.dtls_record import RecordLayer
from janua.prf import prf, master_secret, key_block

CASE = %r
PSK = b"secretPSK"
SR = bytes(range(100, 132))

def hs(typ, seq, body):
    b = bytearray(12 + len(body))
    _hs(b, 0, typ, seq, len(body))
    b[12:] = body
    return bytes(b)

c = DTLSClient(b"Client_identity", PSK, rand=lambda n: bytes(range(n)), ems=False, ri=False)
cr = bytes(range(32))
ch1 = c.start()
ch = bytes(ch1[13:])                                   # the ClientHello message (no cookie exchange)
sh = hs(2, 0, b"\\xfe\\xfd" + SR + b"\\x00" + b"\\xc0\\xa8\\x00")
sh_seen = sh                                           # what the client receives
if CASE == "mitm_server_hello":
    sh_seen = hs(2, 0, b"\\xfe\\xfd" + SR + b"\\x00" + b"\\xc0\\xa8\\x00" + b"\\x00\\x04\\xab\\xcd\\x00\\x00")
shd = hs(14, 1, b"")
srv = RecordLayer()
f2 = c.receive(srv.seal(22, sh_seen + shd, 0))
n = f2[11] << 8 | f2[12]
cke = bytes(f2[13:13 + n])
ms = master_secret(PSK, cr, SR)
kb = key_block(ms, cr, SR)
srv.set_keys(kb[16:32] + kb[0:16] + kb[36:40] + kb[32:36])
srv.read_epoch = 1
o = 0
cfin = None
while True:
    o = srv.open(f2, o)
    if o < 0:
        break
    if srv.typ == 22:
        cfin = bytes(srv.body[srv.s:srv.e])            # the client's Finished, decrypted by the server
vd = prf(ms, b"server finished", sha256(ch + sh + shd + cke + cfin).digest(), 12)
if CASE == "wrong_first_byte":
    vd = bytes((vd[0] ^ 1,)) + vd[1:]
if CASE == "wrong_last_byte":
    vd = vd[:11] + bytes((vd[11] ^ 0x80,))
out = {"state_before": c.state}
try:
    c.receive(srv.seal(20, b"\\x01", 0) + srv.seal(22, hs(20, 2, vd), 1))
    out["error"] = None
except DTLSError as e:
    out["error"] = str(e)
out["state"] = c.state
try:
    out["sent"] = len(c.send(b"ping"))
except DTLSError as e:
    out["sent"] = str(e)
print(json.dumps(out))
"""


def run(mp, case):
    (out,) = mp(SCRIPT % case)
    assert out["state_before"] == 3                    # waiting for the server's ChangeCipherSpec
    return out


@pytest.mark.parametrize("case", ["mitm_server_hello", "wrong_first_byte", "wrong_last_byte"])
def test_server_finished_that_decrypts_but_does_not_verify_fails_the_handshake(mp, case):
    out = run(mp, case)
    assert out == {"state_before": 3, "error": "bad server Finished", "state": 7, "sent": "not connected"}


def test_the_same_server_finished_unaltered_opens_the_session(mp):
    """Control: the scripted server is right, so the two refusals above are for the reason they name."""
    out = run(mp, "genuine")
    assert out == {"state_before": 3, "error": None, "state": 5, "sent": 33}   # 13 + 8 + 4 + 8
