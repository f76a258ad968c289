"""Every manifest field has its documented type (docs/ota.md 1.2), checked after the signature: a
signed manifest whose "rollout" is not an object was a 500 (AttributeError), "size": 0.0 was
accepted (issue #10). bool is not an int, a float is not an int, nested objects are objects."""

import json

import pytest

from tests.ota_verifier.conftest import make_bundle, publish, trust
from tools import ota as host
from verifier.ota import core as ota

SHA = "ab" * 32
GOOD = {"format": 1, "kind": "app", "name": "demo", "version": "1.0.0", "counter": 3, "created": 1767225600,
        "entry": "main", "size": 5, "files": [{"path": "main.py", "size": 5, "sha256": SHA}],
        "compat": {"boards": ["esp32"], "hw_min": None, "hw_max": 4, "mp_min": "1.22.0", "mp_max": None,
                   "features": ["hashlib:sha256"]},
        "rollback": {"allowed": True, "previous": None, "trial_boots": 3, "trial_seconds": 600},
        "rollout": {"strategy": "phased", "phases": [{"percent": 10, "hours": 1}, {"percent": 100, "hours": 0}]}}


def _with(path, value):
    m = json.loads(json.dumps(GOOD))
    *outer, last = path
    d = m
    for k in outer:
        d = d[k]
    d[last] = value
    return m


def test_well_typed_manifest_is_accepted():
    ota.check_manifest(json.loads(json.dumps(GOOD)))


@pytest.mark.parametrize("path, value", [
    (("rollout",), []), (("rollout",), "phased"), (("rollout",), 7), (("rollout",), None),
    (("rollout", "phases"), {"percent": 100}), (("rollout", "phases"), None), (("rollout", "strategy"), 1),
    (("size",), 0.0), (("size",), 5.0), (("size",), True), (("size",), "5"),
    (("format",), 1.0), (("format",), True),
    (("counter",), 3.0), (("counter",), True),
    (("files", 0, "size"), 5.0), (("files", 0, "size"), True),
    (("files",), {"main.py": SHA}), (("files", 0), ["main.py", 5, SHA]),
    (("name",), 7), (("created",), 1.5), (("created",), "today"), (("entry",), ["main"]),
    (("compat",), []), (("compat", "boards"), "esp32"), (("compat", "boards"), [1]),
    (("compat", "hw_max"), 4.0), (("compat", "hw_min"), False), (("compat", "mp_min"), 1.22),
    (("compat", "features"), {"hashlib": "sha256"}),
    (("rollback",), True), (("rollback", "allowed"), 1), (("rollback", "trial_boots"), 3.0),
    (("rollback", "trial_boots"), 0), (("rollback", "trial_seconds"), "600"), (("rollback", "previous"), 1),
])
def test_wrongly_typed_manifest_field_is_rejected_not_500(path, value):
    with pytest.raises(ota.ReleaseRejected) as e:
        ota.check_manifest(_with(path, value))
    assert e.value.code == "release_rejected"


def _resign(bundle, signing, edit):
    m = json.loads((bundle / "manifest.json").read_bytes())
    edit(m)
    (bundle / "manifest.json").write_bytes(host.encode_manifest(m))
    host.sign_bundle(bundle, signing["release"]["key"])
    return bundle


@pytest.mark.parametrize("rollout", [[{"percent": 100}], "phased", 12])
async def test_signed_manifest_with_non_object_rollout_is_400_not_500(client, tenant_a, signing, tmp_path, rollout):
    await trust(client, tenant_a, signing)
    b = _resign(make_bundle(tmp_path, signing, "2.0.0", 2), signing, lambda m: m.update(rollout=rollout))
    out = await publish(client, tenant_a, b, status=400)
    assert out["error"] == "release_rejected" and "rollout must be an object" in out["message"]


async def test_signed_manifest_with_float_size_is_refused(client, tenant_a, signing, tmp_path):
    await trust(client, tenant_a, signing)
    b = _resign(make_bundle(tmp_path, signing, "2.0.0", 2), signing, lambda m: m.update(size=float(m["size"])))
    out = await publish(client, tenant_a, b, status=400)
    assert out["error"] == "release_rejected" and "size must be an integer" in out["message"]
