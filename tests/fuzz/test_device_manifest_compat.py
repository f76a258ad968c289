"""Regression tests for what device.manifest fuzzing found (fuzz/mp_fuzz.py, on the MicroPython unix
port): a signed manifest whose `compat` fields have the wrong type made check_compat raise TypeError
(an int compared with a str, ",".join of a non-string, iterating an int) instead of OTAError, and a
`boards` string matched board names as substrings. check_manifest now checks compat's types
(docs/ota.md 1.2)."""

import json

import pytest

from tools.boards import MPRun

BASE = {"format": 1, "kind": "app", "version": "1.2.0", "counter": 3, "size": 15,
        "files": [{"path": "app/main.py", "size": 15, "sha256": "03e693d9f2f687e0f40e36a8df7fcb4d1c22974012b7c2a55c000eb30f305824"}]}

SCRIPT = """
import json
from janua import OTAError
from janua.manifest import check_manifest, check_compat
for compat in json.loads(open("cases.json").read()):
    m = json.loads(open("base.json").read())
    m["compat"] = compat
    try:
        check_manifest(m)
        check_compat(m, {"board": "esp32", "hw": 2, "mp": (1, 29, 0)}, lambda: {"tls": True})
        print(json.dumps({"ok": True}))
    except OTAError as e:
        print(json.dumps({"refused": str(e)}))
    except Exception as e:
        print(json.dumps({"crash": "%s: %s" % (type(e).__name__, e)}))
"""

CASES = [
    ({"hw_min": "name"}, {"refused": "manifest: compat.hw_min must be an integer in 0..2147483647"}),
    ({"hw_max": 1.5}, {"refused": "manifest: compat.hw_max must be an integer in 0..2147483647"}),
    ({"features": 5}, {"refused": "manifest: compat.features must be a list of strings"}),
    ({"features": ["tls", 7]}, {"refused": "manifest: compat.features must be a list of strings"}),
    ({"boards": [1]}, {"refused": "manifest: compat.boards must be a list of strings"}),
    ({"boards": "esp32s3"}, {"refused": "manifest: compat.boards must be a list of strings"}),
    ({"mp_min": 5}, {"refused": "manifest: bad version 5"}),
    ({"mp_max": ["1", "30"]}, {"refused": "manifest: bad version ['1', '30']"}),
    # still accepted and still checked when the types are right
    ({"boards": ["esp32"], "hw_min": 1, "mp_min": "1.20.0", "features": ["tls"]}, {"ok": True}),
    ({"boards": ["rp2040"]}, {"refused": "incompatible: board esp32 not in rp2040"}),
]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    mp = MPRun(tmp_path_factory.mktemp("manifest"))
    (mp.flash / "base.json").write_text(json.dumps(BASE))
    (mp.flash / "cases.json").write_text(json.dumps([c for c, _ in CASES]))
    return mp(SCRIPT, board="esp32")


@pytest.mark.parametrize("i", range(len(CASES)), ids=[json.dumps(c) for c, _ in CASES])
def test_manifest_compat_of_the_wrong_type_is_refused_not_a_crash(outcomes, i):
    assert outcomes[i] == CASES[i][1]
