"""The short, deterministic run of every fuzz harness (fuzz/run.py --runs): 2,000 inputs per host
target under atheris with libFuzzer seed 1, 3,000 per device target on the MicroPython unix port
(esp32 heap) with PRNG seed 1, starting from the seeds only. A crash in any target fails the test and
leaves its input in the crashes folder named in the message; so does an open defect listed in
fuzz/known.py (the list is for a long run on a branch while a fix is under way: keep it empty on main)."""

import json
import sys

import pytest

from fuzz import run

HOST = ["binauth", "dtls", "coap", "ota", "jwt", "chain", "http", "bulk", "tpm", "attest", "health", "claim", "claimcoap"]
DEVICE = ["device.binauth", "device.coap", "device.dtls", "device.manifest", "device.chain", "device.attest",
          "device.claim"]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("names,runs", [(HOST, 2000), (DEVICE, 3000)], ids=["host", "device"])
def test_short_fuzz_run_finds_no_crash(tmp_path, names, runs, capsys):
    out = tmp_path / "results.json"
    status = run.main(["--runs", str(runs), "--seed", "1", "--only", ",".join(names), "--out", str(out),
                       "--crashes", str(tmp_path / "crashes")])
    res = json.loads(out.read_text())["targets"]
    keys = [n if n.startswith("device.") else "host." + n for n in names]
    assert sorted(res) == sorted(keys)
    with capsys.disabled():
        for k in keys:
            if res[k].get("known"):
                print(f"\n{k}: open defects hit (fuzz/known.py): {sorted(res[k]['known'])}", file=sys.stderr)
    crashed = {k: (r["crash_kinds"], r["crash_files"]) for k, r in res.items() if r["crashes"]}
    assert crashed == {} and status == 0
    assert {k: r["executions"] for k, r in res.items()} == {k: runs for k in keys}
