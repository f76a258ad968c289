"""The device CoAP codec (RFC 7252 section 3) on the MicroPython unix port (esp32 heap), checked
against messages laid out by hand from the RFC, and its size caps and malformed-input errors."""

import pytest

CODEC = """
import json
from janua import coap, PacketError
def h(b):
    return b.hex()
"""


def test_encode_confirmable_get_with_uri_path_and_content_format(mp):
    out = mp(CODEC + """
print(json.dumps(h(coap.encode_request(coap.GET, "a/bc", 0x1234, b"\\x5a", b"hi", content_format=50))))
print(json.dumps(h(coap.encode_request(coap.POST, "", 1, b"", confirmable=False))))
""")
    # 0x41 = ver 1, CON, tkl 1; 0x01 GET; mid; token; Uri-Path(11) "a"; delta 0 "bc";
    # Content-Format (12, delta 1) = 50; payload marker; payload.
    assert out[0] == "4101" "1234" "5a" "b161" "026263" "1132" "ff" "6869"
    assert out[1] == "5002" "0001"


def test_extended_option_delta_and_length_round_trip(mp):
    out = mp(CODEC + """
opts = [(60, b"x" * 20), (11, b"p"), (2000, b"y" * 300), (60, b"")]
m = coap.encode(coap.NON, 0x45, 7, b"tok", opts, b"body")
d = coap.decode(m)
print(json.dumps([d[0], d[1], d[2], h(d[3]), [[n, len(v)] for n, v in d[4]], h(d[5]), h(m[7:10])]))
""")
    t, code, mid, tok, opts, payload, first = out[0]
    assert (t, code, mid, tok, payload) == (1, 0x45, 7, b"tok".hex(), b"body".hex())
    assert opts == [[11, 1], [60, 20], [60, 0], [2000, 300]]
    # Uri-Path (delta 11, length 1) "p", then delta 49 = 13 + 0x24 and length 20 = 13 + 0x07.
    assert first == "b170dd"


@pytest.mark.parametrize("hexmsg,why", [
    ("41", "shorter than the header"),
    ("8100" "0001", "version 2"),
    ("4900" "0001", "token length 9"),
    ("4200" "0001" "aa", "token cut short"),
    ("4000" "0001" "d1", "extended delta missing"),
    ("4000" "0001" "e1" "00", "2-byte extended delta cut short"),
    ("4000" "0001" "f0", "reserved nibble 15"),
    ("4000" "0001" "15" "6162", "option value past the end"),
    ("4000" "0001" "ff", "payload marker without payload"),
], ids=lambda x: x if " " in x else None)
def test_decode_rejects_malformed_messages(mp, hexmsg, why):
    out = mp(CODEC + """
try:
    coap.decode(bytes.fromhex(%r))
    print(json.dumps("accepted"))
except PacketError:
    print(json.dumps("PacketError"))
""" % hexmsg)
    assert out == ["PacketError"], why


def test_decode_caps_size_and_option_count(mp):
    out = mp(CODEC + """
res = []
for m, kw in ((b"\\x40\\x01\\x00\\x01" + b"\\xff" + bytes(1200), {}),
              (b"\\x40\\x01\\x00\\x01" + b"\\x10" * 17, {}),
              (b"\\x40\\x01\\x00\\x01" + b"\\x10" * 3, {"max_options": 2})):
    try:
        coap.decode(m, **kw)
        res.append("accepted")
    except PacketError:
        res.append("PacketError")
print(json.dumps(res))
""")
    assert out == [["PacketError"] * 3]
