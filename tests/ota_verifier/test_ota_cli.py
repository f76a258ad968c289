"""`janua ota build --phases` and `janua ota rollout|start|halt|resume` against a `janua serve`
subprocess, through the CLI's own entry point (tools.cli.main): a small fleet's first phase is
whatever the operator says, the API's phase settings are reachable, and a wrong --phases is one
`janua:` line (plus a hint) before anything is sent."""

import json

import pytest

from tests.ota_verifier.conftest import make_bundle
from tools import cli, ota_release
from tools.api import API
from tools.demo import Verifier

HINT = ("janua: hint: write PERCENT[:HOURS],... with increasing percents ending at 100, "
        "e.g. --phases 10:24,50:48,100\n")


@pytest.mark.parametrize("text, phases", [
    ("10,50,100", [{"percent": 10, "hours": 24}, {"percent": 50, "hours": 24}, {"percent": 100, "hours": 0}]),
    ("100", [{"percent": 100, "hours": 0}]),
    ("0.5:2, 10:48,100:1", [{"percent": 0.5, "hours": 2}, {"percent": 10, "hours": 48},
                            {"percent": 100, "hours": 1}]),
    ("25:0,100", [{"percent": 25, "hours": 0}, {"percent": 100, "hours": 0}]),
])
def test_phases_text_becomes_the_api_phases(text, phases):
    assert ota_release.parse_phases(text) == phases


@pytest.mark.parametrize("text, message", [
    ("50,10,100", "janua: --phases 50,10,100: percentages must increase, each above 0 and at most 100\n"),
    ("10,10,100", "janua: --phases 10,10,100: percentages must increase, each above 0 and at most 100\n"),
    ("0,100", "janua: --phases 0,100: percentages must increase, each above 0 and at most 100\n"),
    ("10,50", "janua: --phases 10,50: the last phase must reach 100 (every device)\n"),
    ("10,150", "janua: --phases 10,150: percentages must increase, each above 0 and at most 100\n"),
    ("ten,100", "janua: --phases ten,100: 'ten' is not a percentage\n"),
    ("10:a day,100", "janua: --phases 10:a day,100: 'a day' is not a number of hours\n"),
    ("10:nan,100", "janua: --phases 10:nan,100: 'nan' is not a number of hours\n"),
    ("10:9000,100", "janua: --phases 10:9000,100: a phase lasts 0 to 8760 hours\n"),
    ("1,2,3,4,5,6,7,8,9,10,100", "janua: --phases 1,2,3,4,5,6,7,8,9,10,100: a rollout has 1 to 10 phases\n"),
])
def test_a_wrong_phases_option_is_one_line_before_anything_is_sent(text, message, capsys, tmp_path):
    # no verifier listens on port 9: an error that came from a request would say so instead
    rc = cli.main(["ota", "rollout", "--server", "http://127.0.0.1:9", "--token", "x", "rel_1", "--phases", text])
    assert rc == 1
    assert capsys.readouterr().err == message + HINT
    (tmp_path / "app").mkdir()
    rc = cli.main(["ota", "build", "--app", str(tmp_path / "app"), "--version", "1", "--counter", "1",
                   "--out", str(tmp_path / "b"), "--phases", text])
    assert rc == 1 and capsys.readouterr().err == message + HINT
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("flag, value, message", [
    ("--health-threshold", "0", "janua: --health-threshold 0.0: a failure rate above 0 and at most 1 (e.g. 0.05 for 5 %)\n"),
    ("--halt-threshold", "5", "janua: --halt-threshold 5.0: a failure rate above 0 and at most 1 (e.g. 0.05 for 5 %)\n"),
    ("--halt-min-reports", "0", "janua: --halt-min-reports 0: a number of devices in 1..100000\n"),
])
def test_a_wrong_rollout_setting_is_one_line(flag, value, message, capsys):
    rc = cli.main(["ota", "rollout", "--server", "http://127.0.0.1:9", "--token", "x", "rel_1", flag, value])
    assert rc == 1 and capsys.readouterr().err == message


def test_build_writes_the_phases_into_the_manifest(tmp_path, capsys):
    app = tmp_path / "app"
    app.mkdir()
    (app / "main.py").write_text("print(1)\n")
    rc = cli.main(["ota", "build", "--app", str(app), "--version", "1.0.0", "--counter", "1", "--source",
                   "--out", str(tmp_path / "b"), "--phases", "10:12,50,100"])
    assert rc == 0, capsys.readouterr().err
    m = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert m["rollout"] == {"strategy": "phased", "phases": [
        {"percent": 10, "hours": 12}, {"percent": 50, "hours": 24}, {"percent": 100, "hours": 0}]}


@pytest.mark.e2e
def test_rollout_phases_and_settings_from_the_command_line(tmp_path, signing, capsys):
    v = Verifier(tmp_path)
    try:
        srv = ["--server", v.url, "--token-file", str(v.token_file)]
        api = API(v.url, token_file=str(v.token_file))
        ota_release.trust_key(api, signing["release"]["pub"], "release")
        # a manifest that carries its own phases: the command line overrides them
        rel = ota_release.publish(api, make_bundle(tmp_path, signing, "2.0.0", 2,
                                                   phases=[{"percent": 1, "hours": 24}, {"percent": 100, "hours": 0}]))
        capsys.readouterr()
        assert cli.main(["ota", "rollout", *srv, rel["id"], "--phases", "10,50:48,100", "--health-threshold", "0.1",
                         "--halt-threshold", "0.5", "--halt-min-reports", "3"]) == 0
        out = capsys.readouterr().out
        ro_id = out.split()[1]
        assert out.startswith(f"rollout {ro_id} of {rel['id']}: pending, phase 1/3, 0% of devices eligible\n"), out
        s = ota_release.status(api, ro_id)
        assert s["phases"] == [{"percent": 10, "hours": 24}, {"percent": 50, "hours": 48}, {"percent": 100, "hours": 0}]
        assert (s["health_threshold"], s["halt_threshold"], s["halt_min_reports"]) == (0.1, 0.5, 3)

        assert cli.main(["ota", "start", *srv, ro_id]) == 0
        assert ": active, phase 1/3, 10% of devices eligible" in capsys.readouterr().out
        assert cli.main(["ota", "start", *srv, ro_id]) == 1
        assert capsys.readouterr().err == (f"janua: rollout {ro_id} is active, not pending\n"
                                           "janua: hint: `janua ota resume ID` restarts a halted rollout's phase\n")
        assert cli.main(["ota", "halt", *srv, ro_id, "--reason", "bad batch"]) == 0
        out = capsys.readouterr().out
        assert "\n  HALTED: by tok_" in out and out.endswith(": bad batch\n"), out
        assert ota_release.status(api, ro_id)["state"] == "halted"
        assert cli.main(["ota", "resume", *srv, ro_id]) == 0
        assert ": active, phase 1/3" in capsys.readouterr().out

        # without --phases the manifest's phases hold
        rel3 = ota_release.publish(api, make_bundle(tmp_path, signing, "3.0.0", 3,
                                                    phases=[{"percent": 20, "hours": 6}, {"percent": 100, "hours": 0}]))
        capsys.readouterr()
        assert cli.main(["ota", "rollout", *srv, rel3["id"], "--start"]) == 0
        assert ": active, phase 1/2, 20% of devices eligible" in capsys.readouterr().out
    finally:
        v.stop()
