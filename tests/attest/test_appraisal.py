"""The appraisal of board evidence over HTTP (docs/attestation.md section 3), each case with its literal
AR4SI vector, status and trust level; quarantine, notifications and the audit rows that go with it."""

import pytest

from tests.attest.conftest import APP, MODULES, attestation, challenge, events, ota_check, publish_release, submit
from verifier.appkeys import SEALER, STORAGE
from verifier.attest import core as attest
from verifier.errors import CryptoError


async def test_board_on_its_release_is_affirming_at_70(client, tenant, board, signing, tmp_path):
    await publish_release(client, tenant, signing, tmp_path)
    nonce = (await ota_check(client, board))["attest"]["nonce"]
    status, body = await submit(client, board.evidence(nonce))
    assert status == 200, body
    assert (body["status"], body["trust_level"], body["quarantined"]) == ("affirming", 70, False)
    view = await attestation(client, tenant, board)
    assert view["latest"]["vector"] == {"instance-identity": 2, "executables": 2, "file-system": 2}
    assert view["latest"]["details"]["pcrMatch"] is True
    assert view["latest"]["details"]["signatureValid"] is True
    assert view["latest"]["details"]["certificateValid"] is None
    r = await client.get(f"/v1/devices/{board.hex}", headers=tenant.headers)
    dev = await r.json()
    assert (dev["attestation_status"], dev["security"]["trust_level"]) == ("affirming", 70)


async def test_changed_file_is_contraindicated_and_quarantines(client, tenant, board, signing, tmp_path):
    await publish_release(client, tenant, signing, tmp_path)
    nonce = (await ota_check(client, board))["attest"]["nonce"]     # binary auth has the device cached now
    changed = dict(APP, **{"app.py": "def run():\n    print('sensor v1 patched on flash')\n"})
    status, body = await submit(client, board.evidence(nonce, app=changed))
    assert status == 200, body
    assert (body["status"], body["trust_level"], body["quarantined"]) == ("contraindicated", 0, True)
    view = await attestation(client, tenant, board)
    assert view["latest"]["vector"] == {"instance-identity": 2, "executables": 96, "file-system": 2}
    assert view["latest"]["details"]["files"] == {"changed": ["app.py"], "missing": [], "extra": []}
    assert view["latest"]["details"]["pcrMatch"] is False
    assert view["latest"]["details"]["recommendations"][0].startswith("file app.py differs from release 1.0.0")
    assert view["quarantined_by_attestation"] is True
    # quarantined: binary auth now refuses it (NOT_ACTIVE, 403), at once (the binauth cache forgot it)
    r = await client.post("/v1/binauth", data=board.request())
    assert r.status == 403
    st = client.app[STORAGE]
    assert events(st, tenant.id) == ["attestation.failed", "device.quarantined"]
    rows = [(a["action"], a["result"]) for a in st.list_audit(tenant.id, board.hex)]
    assert ("DEVICE_ATTESTATION", "contraindicated") in rows
    assert ("device.quarantine", "ok") in rows
    detail = [a["detail"] for a in st.list_audit(tenant.id, board.hex) if a["action"] == "DEVICE_ATTESTATION"][0]
    assert detail.startswith("trust level 0; ")


async def test_extra_file_contraindicates_executables_and_file_system(client, tenant, board, signing, tmp_path):
    await publish_release(client, tenant, signing, tmp_path)
    nonce = await challenge(client, tenant, board)
    status, body = await submit(client, board.evidence(nonce, app=dict(APP, **{"backdoor.py": "import os\n"})))
    assert (status, body["status"]) == (200, "contraindicated")
    view = await attestation(client, tenant, board)
    assert view["latest"]["vector"] == {"instance-identity": 2, "executables": 96, "file-system": 96}
    assert view["latest"]["details"]["files"] == {"changed": [], "missing": [], "extra": ["backdoor.py"]}


async def test_missing_file_contraindicates_file_system(client, tenant, board, signing, tmp_path):
    await publish_release(client, tenant, signing, tmp_path)
    nonce = await challenge(client, tenant, board)
    status, body = await submit(client, board.evidence(nonce, app={"main.py": APP["main.py"]}))
    view = await attestation(client, tenant, board)
    assert view["latest"]["vector"] == {"instance-identity": 2, "executables": 96, "file-system": 96}
    assert view["latest"]["details"]["files"] == {"changed": [], "missing": ["app.py"], "extra": []}


async def test_no_release_of_that_version_is_warning_33(client, tenant, board, signing, tmp_path):
    await publish_release(client, tenant, signing, tmp_path)           # 1.0.0; the board says 0.9.0
    nonce = await challenge(client, tenant, board)
    status, body = await submit(client, board.evidence(nonce, version="0.9.0"))
    assert (status, body["status"], body["trust_level"], body["quarantined"]) == (200, "warning", 40, False)
    view = await attestation(client, tenant, board)
    assert view["latest"]["vector"] == {"instance-identity": 2, "executables": 33}
    assert view["latest"]["details"]["pcrMatch"] is None
    assert events(client.app[STORAGE], tenant.id) == []


async def _ref(client, tenant, **doc):
    r = await client.post("/v1/attest/refs", json=doc, headers=tenant.headers)
    assert r.status == 201, await r.text()
    return await r.json()


MODS = [{"name": n, "size": s, "sha256": h} for n, s, h in MODULES]


async def test_model_reference_match_approves_configuration(client, tenant, board, signing, tmp_path):
    await publish_release(client, tenant, signing, tmp_path)
    await _ref(client, tenant, model="esp32", micropython="1.24.1", build="v1.24.1 on 2024-11-29", modules=MODS)
    status, body = await submit(client, board.evidence(await challenge(client, tenant, board)))
    view = await attestation(client, tenant, board)
    assert view["latest"]["vector"] == {"instance-identity": 2, "executables": 2, "file-system": 2,
                                        "configuration": 2}
    assert body["status"] == "affirming"


@pytest.mark.parametrize("change, vector, status", [
    ({"build": "v1.24.1-dirty"}, {"instance-identity": 2, "executables": 2, "file-system": 2, "configuration": 32},
     "warning"),
    ({"micropython": "1.23.0"}, {"instance-identity": 2, "executables": 2, "file-system": 2, "configuration": 32},
     "warning"),
    ({"modules": [("binauth.mpy", 1234, "11" * 32), ("attest.mpy", 2345, "33" * 32)]},
     {"instance-identity": 2, "executables": 96, "file-system": 2, "configuration": 2}, "contraindicated"),
    ({"modules": [("binauth.mpy", 1234, "11" * 32)]},
     {"instance-identity": 2, "executables": 96, "file-system": 2, "configuration": 2}, "contraindicated"),
], ids=["build", "micropython", "module-changed", "module-missing"])
async def test_model_reference_mismatch(client, tenant, board, signing, tmp_path, change, vector, status):
    await publish_release(client, tenant, signing, tmp_path)
    await _ref(client, tenant, model="esp32", micropython="1.24.1", build="v1.24.1 on 2024-11-29", modules=MODS)
    _, body = await submit(client, board.evidence(await challenge(client, tenant, board), **change))
    view = await attestation(client, tenant, board)
    assert (view["latest"]["vector"], body["status"]) == (vector, status)


async def test_factory_files_in_a_reference_stand_in_for_a_release(client, tenant, board):
    files = [{"path": "app.py", "size": 37, "sha256": "0f" * 32}]
    # the reference lists app.py with another digest and not main.py: changed and extra
    await _ref(client, tenant, model="esp32", app_files=files)
    _, body = await submit(client, board.evidence(await challenge(client, tenant, board), version=""))
    view = await attestation(client, tenant, board)
    assert view["latest"]["vector"] == {"instance-identity": 2, "executables": 96, "file-system": 96}


async def test_factory_files_matching_a_reference_are_approved(client, tenant, board):
    from tests.attest.conftest import files_of
    await _ref(client, tenant, model="esp32", app_files=[{"path": p, "size": s, "sha256": h}
                                                          for p, s, h in files_of(APP)])
    _, body = await submit(client, board.evidence(await challenge(client, tenant, board), version=""))
    view = await attestation(client, tenant, board)
    assert view["latest"]["vector"] == {"instance-identity": 2, "executables": 2, "file-system": 2}
    assert body["status"] == "affirming"


async def test_compromised_device_is_contraindicated(client, tenant, board, signing, tmp_path):
    await publish_release(client, tenant, signing, tmp_path)
    nonce = await challenge(client, tenant, board)
    client.app[STORAGE].update_device(tenant.id, board.id, {"compromised": 1})
    _, body = await submit(client, board.evidence(nonce))
    view = await attestation(client, tenant, board)
    assert view["latest"]["vector"] == {"instance-identity": 96, "executables": 2, "file-system": 2}
    assert body["status"] == "contraindicated"


async def test_claimed_secure_boot_never_raises_a_hardware_claim(client, tenant, board, signing, tmp_path):
    await publish_release(client, tenant, signing, tmp_path)
    _, body = await submit(client, board.evidence(await challenge(client, tenant, board), hw=(0x000b, b"\x01\x02")))
    view = await attestation(client, tenant, board)
    assert "hardware" not in view["latest"]["vector"]
    assert view["latest"]["details"]["hw_claimed"] == {"flags": ["flash_encryption", "secure_boot", "state_read"],
                                                       "raw": "0102"}
    assert body["trust_level"] == 70


class FailingKeys:
    """Token keys that cannot sign (a KEK that opens no token key): the appraisal fails after the
    challenge was consumed."""

    def active(self, now):
        raise CryptoError("no token signing key can be unsealed with this KEK")


async def test_failed_appraisal_keeps_the_challenge(client, tenant, board):
    """The consume and the result are one transaction: an appraisal that fails half-way must not eat
    the device's challenge (its real answer would then be refused as stale)."""
    nonce = await challenge(client, tenant, board)
    st = client.app[STORAGE]
    with pytest.raises(CryptoError):
        attest.appraise(st, client.app[SEALER], FailingKeys(), board.evidence(nonce), int(board.clock()))
    assert st.get_challenge(board.id)["nonce"].hex() == nonce
    assert st.list_attest_results(board.id) == []
    assert (await submit(client, board.evidence(nonce)))[0] == 200


# The board's default 0x09 record (docs/attestation.md 2.2) against a reference's module list.
def test_the_package_digest_of_the_reference_modules_is_the_literal_one():
    import hashlib
    want = hashlib.sha256(b"attest.mpy\0" + (2345).to_bytes(4, "big") + b"\x22" * 32
                          + b"binauth.mpy\0" + (1234).to_bytes(4, "big") + b"\x11" * 32).hexdigest()
    from verifier.attest.evidence import package_digest
    assert package_digest(MODULES) == {"count": 2, "size": 3579, "sha256": want}


async def test_package_digest_equal_to_the_reference_modules_is_affirming(client, tenant, board, signing, tmp_path):
    from verifier.attest.evidence import package_digest
    await publish_release(client, tenant, signing, tmp_path)
    await _ref(client, tenant, model="esp32", micropython="1.24.1", modules=MODS)
    nonce = await challenge(client, tenant, board)
    _, body = await submit(client, board.evidence(nonce, package=package_digest(MODULES)))
    view = await attestation(client, tenant, board)
    assert (view["latest"]["vector"], body["status"]) == (
        {"instance-identity": 2, "executables": 2, "file-system": 2, "configuration": 2}, "affirming")
    assert view["latest"]["details"]["modules"]["match"] is True


async def test_package_digest_of_a_changed_module_is_contraindicated(client, tenant, board, signing, tmp_path):
    from verifier.attest.evidence import package_digest
    await publish_release(client, tenant, signing, tmp_path)
    await _ref(client, tenant, model="esp32", micropython="1.24.1", modules=MODS)
    changed = package_digest([("binauth.mpy", 1234, "11" * 32), ("attest.mpy", 2345, "33" * 32)])
    _, body = await submit(client, board.evidence(await challenge(client, tenant, board), package=changed))
    view = await attestation(client, tenant, board)
    assert (view["latest"]["vector"], body["status"]) == (
        {"instance-identity": 2, "executables": 96, "file-system": 2, "configuration": 2}, "contraindicated")
    assert view["latest"]["details"]["recommendations"][-1].startswith("the janua package (2 modules, 3579 bytes) "
                                                                      "differs from the reference for model esp32")
