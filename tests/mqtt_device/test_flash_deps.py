"""`janua flash` and the firmware's declared dependencies (firmware/package.json "deps"): found locally ->
compiled into lib/ as mip would put them; missing -> a one-line hint, not a failure."""

import json

from tests.mqtt_device.conftest import UMQTT_134, _require_umqtt
from tools import flash


def test_the_repos_deps_are_found_in_mplib_and_compiled_to_lib(tmp_path):
    _require_umqtt()
    files, missing = flash.dep_files(tmp_path)
    assert missing == []
    assert [remote for _, remote in files] == ["lib/umqtt/simple.mpy"]
    assert files[0][0].read_bytes()[:1] == b"M"          # an .mpy, not the source


def test_a_missing_dep_is_reported_not_fatal(tmp_path):
    pkg = tmp_path / "package.json"
    pkg.write_text(json.dumps({"deps": [["umqtt.simple", "latest"], ["nowhere.to.be.found", "latest"]]}))
    files, missing = flash.dep_files(tmp_path / "out", pkg, search=(UMQTT_134.parents[1],))
    assert [r for _, r in files] == ["lib/umqtt/simple.mpy"] and missing == ["nowhere.to.be.found"]



def test_deps_are_copied_as_source_for_a_board_that_cannot_load_our_mpy(tmp_path):
    _require_umqtt()
    pkg = tmp_path / "package.json"
    pkg.write_text(json.dumps({"deps": [["umqtt.simple", "latest"]]}))
    files, missing = flash.dep_files(tmp_path / "out", pkg, search=(UMQTT_134.parents[1],), mpy=False)
    assert [r for _, r in files] == ["lib/umqtt/simple.py"] and missing == []
    assert files[0][0].read_bytes() == (UMQTT_134.parents[1] / "umqtt" / "simple.py").read_bytes()
