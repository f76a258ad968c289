"""The fuzz harnesses' own machinery: seeds that reach deep states, and the known-defect filter that
must not hide any other crash."""

from pathlib import Path

from fuzz import known
from fuzz.conversation import ADDR, dispatch, record, server
from fuzz.world import T0, World
from verifier.dtls.server import AppData, Established


def test_recorded_dtls_conversation_reaches_coap_over_an_established_session(tmp_path):
    # if a protocol change made the recording stop short, the DTLS targets would fuzz only hellos
    conv = record(tmp_path)
    assert len(conv["client"]) == 6 and len(conv["server"]) == 6
    world = World(tmp_path / "replay")
    srv, auth, coap = server(world)
    events, replies = [], []
    for d in conv["client"]:
        r, ev = dispatch(srv, coap, d, ADDR, float(T0))
        events += ev
        replies.append(b"".join(r))
    assert [type(e).__name__ for e in events] == ["Established", "AppData", "AppData", "AppData"]
    assert type(events[0]) is Established and all(type(e) is AppData for e in events[1:])
    assert replies == conv["server"]          # the server side replays byte for byte too


def test_known_defect_filter_matches_only_its_own_crash(monkeypatch):
    monkeypatch.setattr(known, "KNOWN", ((("UnicodeDecodeError", "verifier/dtls/coap.py", "handle", ""),
                                          "CoAP option that is not UTF-8"),))
    def coap_handle():
        b"\x9f".decode("utf-8")

    def elsewhere():
        b"\x9f".decode("utf-8")

    coap_handle.__code__ = coap_handle.__code__.replace(co_filename=str(Path("verifier/dtls/coap.py").resolve()),
                                                        co_name="handle")
    hit = _raise_from(coap_handle)
    miss = _raise_from(elsewhere)
    assert known.match(hit) == "CoAP option that is not UTF-8"
    assert known.match(miss) is None


def _raise_from(fn):
    try:
        fn()
    except Exception as e:
        return e
