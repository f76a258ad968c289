"""Release keys and publishing: a valid signed bundle is stored; a tampered file, a bad signature,
an unknown or retired key, a duplicate and a lower counter are refused with a reason and leave
nothing behind; another tenant sees none of it."""

import json

import pytest

from tests.ota_verifier.conftest import form, make_bundle, publish, trust
from verifier.appkeys import OTA
from verifier.ota.routes import ADMIN_ROUTES


def stored_blobs(client):
    return client.app[OTA].blobs.digests()          # on disk (SQLite) or in the database (PostgreSQL)


async def test_trust_list_retire_keys(client, tenant_a, signing):
    k = await trust(client, tenant_a, signing)
    assert k["kid"] == signing["release"]["kid"] and k["active"]
    await trust(client, tenant_a, signing, "rotated")
    r = await client.post("/v1/release-keys", json={"pub": signing["release"]["pub_hex"]}, headers=tenant_a.headers)
    assert r.status == 409
    r = await client.post(f"/v1/release-keys/{k['kid']}/retire", headers=tenant_a.headers)
    assert r.status == 200 and not (await r.json())["active"]
    keys = (await (await client.get("/v1/release-keys", headers=tenant_a.headers)).json())["keys"]
    assert sorted((x["kid"], x["active"]) for x in keys) == sorted([(signing["release"]["kid"], False),
                                                                    (signing["rotated"]["kid"], True)])


@pytest.mark.parametrize("doc, status", [({"pub": "00" * 31}, 400), ({"pub": "zz" * 32}, 400),
                                         ({"pub": "ab" * 32, "kid": "0" * 16}, 409),   # well-formed, another key's
                                         ({"pub": "ab" * 32, "alg": "RSA"}, 400), ({"pub": "ab" * 32, "extra": 1}, 400)])
async def test_bad_keys_refused(client, tenant_a, doc, status):
    r = await client.post("/v1/release-keys", json=doc, headers=tenant_a.headers)
    assert r.status == status


async def test_publish_valid_bundle(client, tenant_a, signing, tmp_path):
    await trust(client, tenant_a, signing)
    b = make_bundle(tmp_path, signing, "2.0.0", 2)
    rel = await publish(client, tenant_a, b)
    m = json.loads((b / "manifest.json").read_bytes())
    assert rel["version"] == "2.0.0" and rel["counter"] == 2 and rel["kid"] == signing["release"]["kid"]
    assert rel["files"] == sorted(m["files"], key=lambda f: f["path"]) and rel["size"] == m["size"]
    assert sorted(stored_blobs(client)) == sorted(f["sha256"] for f in m["files"])
    got = await (await client.get(f"/v1/releases/{rel['id']}", headers=tenant_a.headers)).json()
    assert got["id"] == rel["id"] and got["rollout_id"] is None
    lst = await (await client.get("/v1/releases", headers=tenant_a.headers)).json()
    assert [x["id"] for x in lst["releases"]] == [rel["id"]]
    audit = await (await client.get("/v1/audit", headers=tenant_a.headers)).json()
    assert any(e["action"] == "ota.release.publish" and e["result"] == "ok" for e in audit["entries"])


def _tamper_file(b):
    p = b / "files" / "main.py"
    return {"files/main.py": p.read_bytes().replace(b"print", b"prant")}


def _bad_sig(b):
    s = json.loads((b / "manifest.sig").read_text())
    s["sig"] = ("00" if s["sig"][:2] != "00" else "11") + s["sig"][2:]
    return {"manifest.sig": json.dumps(s).encode()}


def _edited_manifest(b):
    return {"manifest.json": (b / "manifest.json").read_bytes().replace(b'"counter":2', b'"counter":9')}


def _long_file(b):
    return {"files/main.py": (b / "files" / "main.py").read_bytes() + b"#"}


def _short_file(b):
    return {"files/main.py": (b / "files" / "main.py").read_bytes()[:-1]}


@pytest.mark.parametrize("tamper, reason", [
    (_tamper_file, "SHA-256 does not match"),
    (_bad_sig, "bad signature"),
    (_edited_manifest, "bad signature"),
    (_long_file, "longer than the manifest"),
    (_short_file, "the manifest says"),
])
async def test_tampered_bundle_refused_nothing_stored(client, tenant_a, signing, tmp_path, tamper, reason):
    await trust(client, tenant_a, signing)
    b = make_bundle(tmp_path, signing, "2.0.0", 2)
    out = await publish(client, tenant_a, b, status=400, replace=tamper(b))
    assert out["error"] == "release_rejected" and reason in out["message"]
    assert stored_blobs(client) == []
    assert (await (await client.get("/v1/releases", headers=tenant_a.headers)).json())["releases"] == []
    audit = await (await client.get("/v1/audit", headers=tenant_a.headers)).json()
    assert any(e["action"] == "ota.release.publish" and e["result"] == "error" and reason in e["reason"]
               for e in audit["entries"])


async def test_missing_file_refused(client, tenant_a, signing, tmp_path):
    await trust(client, tenant_a, signing)
    b = make_bundle(tmp_path, signing, "2.0.0", 2)
    out = await publish(client, tenant_a, b, status=400, drop=("files/lib/util.py",))
    assert "missing" in out["message"] and stored_blobs(client) == []


async def test_unknown_and_retired_keys_refused(client, tenant_a, signing, tmp_path):
    await trust(client, tenant_a, signing)
    out = await publish(client, tenant_a, make_bundle(tmp_path, signing, "2.0.0", 2, key="stranger"), status=400)
    assert "unknown key id" in out["message"]
    await client.post(f"/v1/release-keys/{signing['release']['kid']}/retire", headers=tenant_a.headers)
    out = await publish(client, tenant_a, make_bundle(tmp_path, signing, "2.0.1", 2), status=400)
    assert "retired" in out["message"] and stored_blobs(client) == []


async def test_duplicates_and_lower_counter_refused(client, tenant_a, signing, tmp_path):
    await trust(client, tenant_a, signing)
    await publish(client, tenant_a, make_bundle(tmp_path / "a", signing, "2.0.0", 5))
    before = stored_blobs(client)
    out = await publish(client, tenant_a, make_bundle(tmp_path / "b", signing, "2.0.0", 6), status=409)
    assert out["error"] == "release_conflict" and "already published" in out["message"]
    out = await publish(client, tenant_a, make_bundle(tmp_path / "c", signing, "1.9.0", 4,
                                                      files={"main.py": "old\n"}), status=409)
    assert "below the published 5" in out["message"]
    assert stored_blobs(client) == before
    await publish(client, tenant_a, make_bundle(tmp_path / "d", signing, "2.0.1", 5))   # equal counter: fine


async def test_upload_format_and_caps(client, tenant_a, signing, tmp_path, config):
    await trust(client, tenant_a, signing)
    b = make_bundle(tmp_path, signing, "2.0.0", 2)
    r = await client.post("/v1/releases", json={"manifest": "x"}, headers=tenant_a.headers)
    assert r.status == 400
    fd = form(b)
    fd._fields.insert(0, fd._fields.pop(1))           # manifest.sig first: out of order
    r = await client.post("/v1/releases", data=fd, headers=tenant_a.headers)
    assert r.status == 400 and "part 1 must be manifest.json" in (await r.json())["message"]
    client.app[OTA].max_bytes = 10
    out = await publish(client, tenant_a, b, status=400)
    assert "over the 10-byte limit" in out["message"]


async def test_cross_tenant_isolation(client, tenant_a, tenant_b, signing, tmp_path):
    await trust(client, tenant_a, signing)
    rel = await publish(client, tenant_a, make_bundle(tmp_path, signing, "2.0.0", 2))
    r = await client.post(f"/v1/releases/{rel['id']}/rollout", json={"start": True}, headers=tenant_a.headers)
    ro = await r.json()
    for method, path in [("GET", f"/v1/releases/{rel['id']}"), ("POST", f"/v1/releases/{rel['id']}/rollout"),
                         ("GET", f"/v1/rollouts/{ro['id']}"), ("POST", f"/v1/rollouts/{ro['id']}/halt"),
                         ("POST", f"/v1/rollouts/{ro['id']}/resume"),
                         ("POST", f"/v1/release-keys/{signing['release']['kid']}/retire")]:
        r = await client.request(method, path, headers=tenant_b.headers)
        assert r.status == 404, (method, path)
    assert (await (await client.get("/v1/releases", headers=tenant_b.headers)).json())["releases"] == []
    assert (await (await client.get("/v1/rollouts", headers=tenant_b.headers)).json())["rollouts"] == []
    # tenant b does not trust tenant a's key: the same bundle is an unknown key there
    out = await publish(client, tenant_b, tmp_path / "bundle-2.0.0-2", status=400)
    assert "unknown key id" in out["message"]


@pytest.mark.parametrize("method, path", [(m, p.replace("{release_id}", "rel_0000000000000000")
                                            .replace("{rollout_id}", "ro_0000000000000000")
                                            .replace("{kid}", "0000000000000000")) for m, p, _ in ADMIN_ROUTES])
async def test_admin_token_required(client, tenant_a, method, path):
    r = await client.request(method, path, json={}, headers={"Authorization": "Bearer jna_nope"})
    assert r.status == 401 and (await r.json())["error"] == "unauthorized"
