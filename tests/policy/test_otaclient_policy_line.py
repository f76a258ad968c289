"""The board's console line for a check that offered nothing (firmware/janua/otaclient.py `_no_update`, docs/ota.md
7.4), on the MicroPython unix port with the esp32 heap: the verifier's `policy` object becomes "deferred until
<time> (<reason>)" or "no update (<reason>)"; a malformed one (the JSON is the verifier's, not MAC'd) never raises."""

import json

from tools.boards import MPRun

CASES = [
    (None, "janua ota: up to date"),
    ({"decision": "deferred", "reason": "policy: outside the maintenance window", "deferred_until": 1956531600},
     "janua ota: deferred until 1956531600 (policy: outside the maintenance window)"),
    ({"decision": "refused", "reason": "policy: updates not allowed", "deferred_until": None},
     "janua ota: no update (policy: updates not allowed)"),
    ({"decision": "refused", "reason": "policy: manual updates (no rollout offers a release)", "deferred_until": None},
     "janua ota: no update (policy: manual updates (no rollout offers a release))"),
    # deferred without a time to show, a reason that is no text, nothing at all: still one line
    ({"decision": "deferred", "reason": 7, "deferred_until": "soon"}, "janua ota: no update"),
    ({}, "janua ota: no update"),
    # a reason is cut at 120 characters
    ({"decision": "refused", "reason": "x" * 300, "deferred_until": None}, "janua ota: no update (" + "x" * 120 + ")"),
]


def test_the_line_of_a_check_the_update_policy_held_back(tmp_path):
    mp = MPRun(tmp_path)
    out = mp("""
        import json
        from janua.otaclient import _no_update
        for pol in json.loads(%r):
            print(json.dumps({"line": _no_update(pol)}))
    """ % json.dumps([c[0] for c in CASES]))
    assert [o["line"] for o in out] == [c[1] for c in CASES]
