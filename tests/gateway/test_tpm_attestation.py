"""TPM 2.0 attestation of edge gateways end to end (docs/attestation.md section 6): a real swtpm,
tpm2-tools through verifier/edge/tpm.py, the cloud verifier on a real HTTP port. Expected values are
written out: the reference PCRs are SHA-256(0^32 || SHA-256("janua gateway boot i")), what the
fixture's boot extends."""

import asyncio
import base64
import hashlib
import json
import subprocess
import urllib.request

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.gateway.conftest import needs_swtpm
from tools.errors import CLIError
from verifier.appkeys import STORAGE
from verifier.attest.ear import verify_ear
from verifier.edge import tpm as gw
from verifier.edge.tpm import TPMToolError


def enrol(call, tpm, name, model, ek_chain=(), ak_alg="rsa"):
    return asyncio.run(gw.enrol(gw.sync_call(call), tpm, name, model, ek_chain, ak_alg))


def attest(call, tpm, gateway_id):
    return asyncio.run(gw.attest(gw.sync_call(call), tpm, gateway_id))

pytestmark = needs_swtpm

MODEL = "gw-1"
REF = {"0": "378c3cf8a7d2a624328f0695b31cd95ac60b4be30028cdb8cc7674bd05ebfe6f",
       "1": "51301f2c9f6691a90067c3b6d286f5904a3449a4ae60d9089eeec7a7803912ed",
       "2": "c67b407c5e5fa7415519f7fdff17321b324938b8b5db751c6f7d7cf7a5f62155",
       "3": "1069cc9fb8f52aeffa2d88034e43a8a9cbfd70d8489b0d36af7f7a5b8c1d59a2",
       "4": "5c2ec42afea8d08119aaaff9a796a2de92e63dbd15252d75276a4e1a5fa4d0a8",
       "5": "301b9d789cc16bd6d2b998f166db4d00722382589628b2e3900af57e8d6e5f08",
       "6": "3ab94550d0463ea9ea4ea467783ac6572b9472652231168eee2f40f4c16b8db8",
       "7": "ea4c82e25430583c7074c7a54c4af1492aec16d3696c3de3f57a0ffd8a6d59b2"}
PCR7_SECURE_BOOT_OFF = hashlib.sha256(b"shim: secure boot off").digest()


def _b64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def jwks_keys(url):
    """{kid: public key} from the verifier's JWKS: all a relying party has to verify an EAR."""
    with urllib.request.urlopen(url + "/.well-known/jwks.json") as r:
        jwks = json.loads(r.read())
    return {k["kid"]: ec.EllipticCurvePublicNumbers(int.from_bytes(_b64(k["x"]), "big"), int.from_bytes(_b64(k["y"]), "big"),
                                                    ec.SECP256R1()).public_key() for k in jwks["keys"]}


def prepare_tenant(cloud, tpm):
    cloud.api.call("POST", "/v1/gateways/ek-cas", {"cert": tpm.root_pem})
    cloud.api.call("PUT", f"/v1/gateways/models/{MODEL}/pcrs", {"pcrs": REF})


def enrolled(cloud, tpm, pcr7=None, name="gw-a"):
    """A gateway enrolled and activated with its own edge token, after a boot: (gateway, its API)."""
    prepare_tenant(cloud, tpm)
    _, api = cloud.edge_token()
    tpm.boot(pcr7)
    gw = enrol(api.call, tpm.tpm, name, MODEL, ek_chain=[tpm.issuer_der])
    return gw, api


def _refused(fn, *args):
    with pytest.raises(CLIError) as e:
        fn(*args)
    return e.value.status, e.value.detail


def test_gateway_with_reference_pcrs_passes_and_its_ear_verifies_with_the_jwks_alone(cloud, soft_tpm):
    gw, api = enrolled(cloud, soft_tpm)
    assert gw["status"] == "active"
    result = attest(api.call, soft_tpm.tpm, gw["id"])
    assert (result["status"], result["passed"], result["trust_level"]) == ("affirming", True, 100)
    assert result["details"]["pcrMatch"] is True and result["details"]["certificateValid"] is True
    claims = verify_ear(result["ear"], jwks_keys(cloud.url), cloud.clock())
    sub = claims["submods"][gw["id"]]
    assert sub["ear.status"] == "affirming"
    assert sub["ear.trustworthiness-vector"] == {"hardware": 2, "instance-identity": 2, "executables": 3,
                                                 "configuration": 2}
    assert sub["ear.appraisal-policy-id"] == "janua:gateway-tpm/1"
    # the gateway's record: the seed's credentials.tpm with the quoted PCRs
    got = cloud.api.call("GET", f"/v1/gateways/{gw['id']}")
    assert got["credentials"]["tpm"]["pcrs"] == REF and got["passed"] is True
    # and its edge token syncs
    snap = api.call("GET", "/v1/edge/snapshot")
    assert snap["tenant"]["id"] == cloud.tenant.id


def test_pcr7_extended_differently_fails_cuts_the_gateway_off_and_its_edge_gets_no_keys(cloud, soft_tpm):
    (dev_hex, _), = cloud.tenant.provision([{}])
    gw, api = enrolled(cloud, soft_tpm, pcr7=PCR7_SECURE_BOOT_OFF)
    result = attest(api.call, soft_tpm.tpm, gw["id"])
    assert (result["status"], result["passed"], result["trust_level"]) == ("contraindicated", False, 0)
    assert result["details"]["mismatchedPcrs"] == [7]
    claims = verify_ear(result["ear"], jwks_keys(cloud.url), cloud.clock())
    assert claims["submods"][gw["id"]]["ear.trustworthiness-vector"] == {
        "hardware": 2, "instance-identity": 2, "executables": 3, "configuration": 96}
    assert cloud.api.call("GET", f"/v1/gateways/{gw['id']}")["status"] == "failed"
    for path in ("/v1/edge/snapshot?since=0", f"/v1/edge/devices/{dev_hex}"):
        status, _ = _refused(api.call, "GET", path)
        assert status == 403
    status, _ = _refused(api.call, "POST", "/v1/edge/reports", {})
    assert status == 403
    events = [n["event"] for n in cloud.handle.app[STORAGE].list_notifications(cloud.tenant.id)]
    assert events == ["gateway.attestation.failed", "gateway.cut_off"]
    # the tenant's own (unbound) admin token is not an edge of that gateway and is not refused
    assert cloud.api.call("GET", "/v1/edge/snapshot")["tenant"]["id"] == cloud.tenant.id


def test_a_failed_gateway_that_boots_right_again_is_let_back_in(cloud, soft_tpm):
    gw, api = enrolled(cloud, soft_tpm, pcr7=PCR7_SECURE_BOOT_OFF)
    assert attest(api.call, soft_tpm.tpm, gw["id"])["passed"] is False
    soft_tpm.reboot()                            # a new swtpm process on the same state: PCRs reset, keys kept
    soft_tpm.boot()
    assert attest(api.call, soft_tpm.tpm, gw["id"])["passed"] is True
    assert api.call("GET", "/v1/edge/snapshot")["tenant"]["id"] == cloud.tenant.id


def test_replayed_quote_is_refused(cloud, soft_tpm):
    gw, api = enrolled(cloud, soft_tpm)
    nonce = bytes.fromhex(api.call("POST", f"/v1/gateways/{gw['id']}/challenge")["nonce"])
    q, sig, pcrs = soft_tpm.tpm.quote(nonce)
    body = {"quote": q.hex(), "signature": sig.hex(), "pcrs": pcrs.hex()}
    assert api.call("POST", f"/v1/gateways/{gw['id']}/quote", body)["passed"] is True
    status, detail = _refused(api.call, "POST", f"/v1/gateways/{gw['id']}/quote", body)
    assert status == 409 and detail.startswith("stale_nonce")
    # a fresh challenge outstanding does not make the old quote good either
    api.call("POST", f"/v1/gateways/{gw['id']}/challenge")
    status, detail = _refused(api.call, "POST", f"/v1/gateways/{gw['id']}/quote", body)
    assert status == 409 and detail.startswith("stale_nonce")


def test_quote_over_an_expired_nonce_is_refused(cloud, soft_tpm):
    gw, api = enrolled(cloud, soft_tpm)
    nonce = bytes.fromhex(api.call("POST", f"/v1/gateways/{gw['id']}/challenge")["nonce"])
    q, sig, pcrs = soft_tpm.tpm.quote(nonce)
    cloud.clock.advance(301)                     # the nonce lives 300 s
    status, detail = _refused(api.call, "POST", f"/v1/gateways/{gw['id']}/quote",
                              {"quote": q.hex(), "signature": sig.hex(), "pcrs": pcrs.hex()})
    assert status == 409 and detail.startswith("stale_nonce")


def test_quote_over_a_superseded_nonce_is_refused(cloud, soft_tpm):
    gw, api = enrolled(cloud, soft_tpm)
    old = bytes.fromhex(api.call("POST", f"/v1/gateways/{gw['id']}/challenge")["nonce"])
    api.call("POST", f"/v1/gateways/{gw['id']}/challenge")
    q, sig, pcrs = soft_tpm.tpm.quote(old)
    status, _ = _refused(api.call, "POST", f"/v1/gateways/{gw['id']}/quote",
                         {"quote": q.hex(), "signature": sig.hex(), "pcrs": pcrs.hex()})
    assert status == 409


def test_ak_that_is_not_in_the_tpm_cannot_activate_and_its_quotes_are_refused(cloud, soft_tpm):
    prepare_tenant(cloud, soft_tpm)
    _, api = cloud.edge_token()
    t = soft_tpm.tpm
    claimed_ak = t.ak_public()
    t.ak_public(new=True)                        # the TPM now holds another AK
    made = api.call("POST", "/v1/gateways", {"name": "gw-x", "model": MODEL, "ek_public": t.ek_public().hex(),
                                             "ek_cert": t.ek_cert().hex(), "ak_public": claimed_ak.hex(),
                                             "ek_chain": [soft_tpm.issuer_der.hex()]})
    with pytest.raises(TPMToolError):
        t.activate(bytes.fromhex(made["credential_blob"]), bytes.fromhex(made["encrypted_secret"]))
    status, _ = _refused(api.call, "POST", f"/v1/gateways/{made['id']}/activate", {"credential": "00" * 32})
    assert status == 403
    for path in ("challenge", "quote"):
        body = None if path == "challenge" else {"quote": "00", "signature": "00", "pcrs": "00" * 256}
        status, _ = _refused(api.call, "POST", f"/v1/gateways/{made['id']}/{path}", body)
        assert status == 409
    assert cloud.api.call("GET", f"/v1/gateways/{made['id']}")["status"] == "enrolling"
    status, _ = _refused(api.call, "GET", "/v1/edge/snapshot")
    assert status == 403
    # the same token enrols again with the AK the TPM does hold: the unactivated enrolment is replaced
    again = enrol(api.call, t, "gw-x2", MODEL, ek_chain=[soft_tpm.issuer_der])
    assert (again["id"], again["name"], again["status"]) == (made["id"], "gw-x2", "active")


def test_quote_signed_by_another_ak_than_the_activated_one_fails_the_gateway(cloud, soft_tpm):
    gw, api = enrolled(cloud, soft_tpm)
    soft_tpm.tpm.ak_public(new=True)             # the activated AK is replaced behind the verifier's back
    result = attest(api.call, soft_tpm.tpm, gw["id"])
    assert (result["status"], result["passed"], result["details"]["failure"]) == ("contraindicated", False, "signature")
    claims = verify_ear(result["ear"], jwks_keys(cloud.url), cloud.clock())
    assert claims["submods"][gw["id"]]["ear.trustworthiness-vector"] == {"hardware": 2, "instance-identity": 96}
    status, _ = _refused(api.call, "GET", "/v1/edge/snapshot")
    assert status == 403


def test_ek_certificate_from_an_unregistered_ca_is_refused_at_enrolment(cloud, soft_tpm, other_ca_tpm):
    prepare_tenant(cloud, soft_tpm)              # the tenant trusts soft_tpm's CA only
    _, api = cloud.edge_token()
    status, detail = _refused(enrol, api.call, other_ca_tpm.tpm, "gw-b", MODEL, [other_ca_tpm.issuer_der])
    assert status == 403 and "untrusted" in detail
    assert cloud.api.call("GET", "/v1/gateways")["gateways"] == []


def test_ek_certificate_without_its_intermediate_is_refused(cloud, soft_tpm):
    prepare_tenant(cloud, soft_tpm)
    _, api = cloud.edge_token()
    status, detail = _refused(enrol, api.call, soft_tpm.tpm, "gw-a", MODEL, [])
    assert status == 403 and "untrusted" in detail


def test_attestation_older_than_interval_and_grace_cuts_the_edge_off(cloud, soft_tpm):
    gw, api = enrolled(cloud, soft_tpm)
    assert attest(api.call, soft_tpm.tpm, gw["id"])["passed"] is True
    cloud.clock.advance(3600 + 600)              # default interval 1 h + grace 10 min: still fresh
    assert api.call("GET", "/v1/edge/snapshot")["tenant"]["id"] == cloud.tenant.id
    cloud.clock.advance(1)
    status, detail = _refused(api.call, "GET", "/v1/edge/snapshot")
    assert status == 403 and "older than 4200 s" in detail
    assert cloud.api.call("GET", f"/v1/gateways/{gw['id']}")["status"] == "failed"
    events = [n["event"] for n in cloud.handle.app[STORAGE].list_notifications(cloud.tenant.id)]
    assert events == ["gateway.cut_off"]
    # a fresh passing quote lets it back in
    assert attest(api.call, soft_tpm.tpm, gw["id"])["passed"] is True
    assert api.call("GET", "/v1/edge/snapshot")["now"] == int(cloud.clock())


def test_tenant_requiring_attested_edges_refuses_an_unbound_token(cloud, soft_tpm):
    _, unbound = cloud.edge_token()
    assert unbound.call("GET", "/v1/edge/snapshot")["tenant"]["id"] == cloud.tenant.id
    assert cloud.api.call("PUT", "/v1/gateways/policy", {"require_attested": True}) == {
        "interval_s": 3600, "grace_s": 600, "require_attested": True}
    status, _ = _refused(unbound.call, "GET", "/v1/edge/snapshot")
    assert status == 403
    gw, api = enrolled(cloud, soft_tpm)
    assert attest(api.call, soft_tpm.tpm, gw["id"])["passed"] is True
    assert api.call("GET", "/v1/edge/snapshot")["tenant"]["id"] == cloud.tenant.id


def test_gateway_of_a_model_without_reference_is_a_warning_and_not_let_in(cloud, soft_tpm):
    cloud.api.call("POST", "/v1/gateways/ek-cas", {"cert": soft_tpm.root_pem})
    _, api = cloud.edge_token()
    soft_tpm.boot()
    gw = enrol(api.call, soft_tpm.tpm, "gw-c", "unknown-model", ek_chain=[soft_tpm.issuer_der])
    result = attest(api.call, soft_tpm.tpm, gw["id"])
    assert (result["status"], result["passed"], result["trust_level"]) == ("warning", False, 50)
    status, _ = _refused(api.call, "GET", "/v1/edge/snapshot")
    assert status == 403


def test_ecdsa_p256_ak_passes(cloud, soft_tpm):
    prepare_tenant(cloud, soft_tpm)
    _, api = cloud.edge_token()
    soft_tpm.boot()
    gw = enrol(api.call, soft_tpm.tpm, "gw-e", MODEL, ek_chain=[soft_tpm.issuer_der], ak_alg="ecc")
    assert attest(api.call, soft_tpm.tpm, gw["id"])["status"] == "affirming"


def test_janua_gateway_enrol_then_attest_from_the_command_line(cloud, soft_tpm, tmp_path, capsys):
    from tools.cli import main
    prepare_tenant(cloud, soft_tpm)
    _, api = cloud.edge_token()
    (tmp_path / "edge.token").write_text(api.token + "\n")
    (tmp_path / "issuer.pem").write_bytes(subprocess.run(
        ["openssl", "x509", "-inform", "der", "-outform", "pem"], input=soft_tpm.issuer_der, capture_output=True,
        check=True).stdout)
    soft_tpm.boot()
    common = ["--tpm", soft_tpm.tpm.tcti, "--upstream", cloud.url, "--token-file", str(tmp_path / "edge.token"),
              "--state", str(tmp_path / "gw.json")]
    assert main(["gateway", "enrol", *common, "--name", "gw-cli", "--model", MODEL,
                 "--ek-chain", str(tmp_path / "issuer.pem")]) == 0
    enrolled_line = json.loads(capsys.readouterr().out)
    assert enrolled_line["status"] == "active"
    assert main(["gateway", "attest", *common]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["status"], out["passed"], out["trust_level"]) == ("affirming", True, 100)
    soft_tpm.tpm.extend(7, PCR7_SECURE_BOOT_OFF)
    assert main(["gateway", "attest", *common]) == 1
    err = capsys.readouterr().err
    assert "janua: attestation did not pass: contraindicated" in err and "PCRs 7 differ" in err


def _run_edge(cloud, tpm, api, state, tmp_path):
    """`janua serve --edge --tpm` in process (its own event loop, real time, a real HTTP port): the edge's
    /v1/edge/status once it has started."""
    from tests.support import KEK
    from verifier.app import start_server
    from verifier.config import Config, EdgeConfig
    cfg = Config(db_path=str(tmp_path / "edge.db"), kek=KEK, http_port=0, udp_port=None, dtls_port=None,
                 edge=EdgeConfig(upstream=cloud.url, token=api.token, tpm=tpm.tpm.tcti, gateway_name="gw-edge",
                                 gateway_model=MODEL, gateway_state=str(state), ek_chain=(tpm.issuer_der,)))

    async def go():
        import aiohttp
        h = await start_server(cfg)
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
                async with http.get(h.url + "/v1/edge/status") as r:
                    return await r.json()
        finally:
            await h.close()
    return asyncio.run(go())


def test_edge_with_tpm_enrols_once_attests_at_start_and_then_gets_its_keys(cloud, soft_tpm, tmp_path):
    prepare_tenant(cloud, soft_tpm)
    _, api = cloud.edge_token()
    soft_tpm.boot()
    state = tmp_path / "gw.json"
    status = _run_edge(cloud, soft_tpm, api, state, tmp_path)
    assert status["serving"] is True and status["last_sync"] is not None
    (gw_,) = cloud.api.call("GET", "/v1/gateways")["gateways"]
    assert (gw_["name"], gw_["status"], gw_["passed"]) == ("gw-edge", "active", True)
    assert json.loads(state.read_text())["id"] == gw_["id"]
    # a restart: the same gateway attests again, no second enrolment
    first = gw_["attested_at"]
    cloud.clock.advance(60)
    assert _run_edge(cloud, soft_tpm, api, state, tmp_path)["serving"] is True
    (again,) = cloud.api.call("GET", "/v1/gateways")["gateways"]
    assert again["id"] == gw_["id"] and again["attested_at"] == first + 60


def test_edge_with_tpm_that_booted_wrong_gets_no_sync(cloud, soft_tpm, tmp_path):
    prepare_tenant(cloud, soft_tpm)
    _, api = cloud.edge_token()
    soft_tpm.boot(pcr7=PCR7_SECURE_BOOT_OFF)
    status = _run_edge(cloud, soft_tpm, api, tmp_path / "gw.json", tmp_path)
    assert status["last_sync"] is None and status["serving"] is False
    (gw_,) = cloud.api.call("GET", "/v1/gateways")["gateways"]
    assert (gw_["status"], gw_["passed"]) == ("failed", False)


def test_a_gateways_own_token_cannot_change_what_it_is_appraised_against(cloud, soft_tpm):
    gw_, api = enrolled(cloud, soft_tpm, pcr7=PCR7_SECURE_BOOT_OFF)
    bad7 = "2395e42f676b83d7822123a7556fcb245f03e1a8bbe6d6d7192867322276c866"   # what that boot put in PCR 7
    for method, path, body in (("PUT", f"/v1/gateways/models/{MODEL}/pcrs", {"pcrs": {**REF, "7": bad7}}),
                               ("POST", "/v1/gateways/ek-cas", {"cert": soft_tpm.root_pem}),
                               ("PUT", "/v1/gateways/policy", {"interval_s": 2592000})):
        status, _ = _refused(api.call, method, path, body)
        assert status == 403
    assert attest(api.call, soft_tpm.tpm, gw_["id"])["passed"] is False
