"""The policy core (verifier/policy/core.py): the merge tenant < model < group < device with the source of each
field, the document validation, and the maintenance window across midnight and DST changes. Expected documents,
reasons and times are written out."""

import pytest

from verifier.errors import ValidationError
from verifier.policy import core
from verifier.registry.model import Policy

DEV = {"id": bytes.fromhex("00112233445566ff"), "tenant_id": "t1", "model_id": "sensor-v2",
       "metadata": {"group": "line-3"}, "permissions": 0x0F}

ALL_DEFAULT = {
    "auth": {"protocols": ["binauth_udp", "binauth_http", "dtls", "mqtt_cert", "mqtt_password", "token"],
             "credential_types": ["symmetric", "x509", "password"], "min_trust_level": 0, "attestation": "any",
             "token_ttl_s": 3600, "drift_s": 300},
    "access": {"permissions": 15, "coap_resources": None, "mqtt_topics": None, "token_scopes": None},
    "update": {"mode": "automatic", "window": None, "allowed": True}}


def test_no_document_is_todays_behaviour_with_its_sources():
    policy, sources = core.effective({}, Policy(drift_s=120, token_ttl_s=900), DEV)
    assert policy == {**ALL_DEFAULT, "auth": {**ALL_DEFAULT["auth"], "drift_s": 120, "token_ttl_s": 900}}
    assert sources == {
        "auth.protocols": "default", "auth.credential_types": "default", "auth.min_trust_level": "default",
        "auth.attestation": "default", "auth.token_ttl_s": "tenant_policy", "auth.drift_s": "tenant_policy",
        "access.permissions": "device_column", "access.coap_resources": "default", "access.mqtt_topics": "default",
        "access.token_scopes": "default", "update.mode": "default", "update.window": "default",
        "update.allowed": "default"}


def test_each_field_comes_from_the_most_specific_scope_that_sets_it():
    docs = {
        ("tenant", "default"): {"auth": {"protocols": ["dtls"], "min_trust_level": 10},
                                "update": {"mode": "manual", "allowed": True}},
        ("model", "sensor-v2"): {"auth": {"min_trust_level": 20, "drift_s": 60}, "access": {"permissions": 3}},
        ("group", "line-3"): {"auth": {"min_trust_level": 30}, "update": {"mode": "automatic"}},
        ("device", "00112233445566ff"): {"access": {"permissions": 1, "token_scopes": ["telemetry"]}},
        # documents of other keys do not apply
        ("model", "other"): {"update": {"allowed": False}},
        ("group", "line-4"): {"auth": {"attestation": "affirming"}},
        ("device", "ffffffffffffffff"): {"auth": {"protocols": []}},
    }
    policy, sources = core.effective(docs, Policy(), DEV)
    assert policy == {
        "auth": {"protocols": ["dtls"], "credential_types": ["symmetric", "x509", "password"], "min_trust_level": 30,
                 "attestation": "any", "token_ttl_s": 3600, "drift_s": 60},
        "access": {"permissions": 1, "coap_resources": None, "mqtt_topics": None, "token_scopes": ["telemetry"]},
        "update": {"mode": "automatic", "window": None, "allowed": True}}
    assert {k: v for k, v in sources.items() if v not in ("default", "tenant_policy")} == {
        "auth.protocols": "tenant", "auth.min_trust_level": "group:line-3", "auth.drift_s": "model:sensor-v2",
        "access.permissions": "device", "access.token_scopes": "device", "update.mode": "group:line-3",
        "update.allowed": "tenant"}


def test_a_device_without_model_or_group_skips_those_scopes():
    docs = {("model", "sensor-v2"): {"auth": {"drift_s": 5}}, ("group", "line-3"): {"auth": {"drift_s": 6}}}
    policy, sources = core.effective(docs, Policy(), {**DEV, "model_id": None, "metadata": {}})
    assert (policy["auth"]["drift_s"], sources["auth.drift_s"]) == (300, "tenant_policy")


def test_a_list_replaces_never_unions():
    docs = {("tenant", "default"): {"auth": {"protocols": ["dtls", "token"]}},
            ("device", "00112233445566ff"): {"auth": {"protocols": ["binauth_udp"]}}}
    assert core.effective(docs, Policy(), DEV)[0]["auth"]["protocols"] == ["binauth_udp"]


def test_validation_canonicalises_days_and_keeps_what_it_was_given():
    doc = {"auth": {"protocols": ["token", "dtls"], "min_trust_level": 50.0},
           "access": {"mqtt_topics": {"publish": ["telemetry/#"]}},
           "update": {"mode": "window", "window": {"days": ["sun", "mon"], "start": "22:00", "end": "02:00",
                                                    "tz": "Europe/Berlin"}}}
    assert core.validate_document(doc) == {
        "auth": {"protocols": ["token", "dtls"], "min_trust_level": 50},
        "access": {"mqtt_topics": {"publish": ["telemetry/#"], "subscribe": []}},
        "update": {"mode": "window", "window": {"days": ["mon", "sun"], "start": "22:00", "end": "02:00",
                                                 "tz": "Europe/Berlin"}}}


@pytest.mark.parametrize("doc", [
    {"auth": None}, {"auth": {"protocols": ["ssh"]}}, {"auth": {"protocols": ["dtls", "dtls"]}},
    {"auth": {"min_trust_level": 101}}, {"auth": {"min_trust_level": True}}, {"auth": {"attestation": "good"}},
    {"auth": {"token_ttl_s": 59}}, {"auth": {"drift_s": 86401}}, {"auth": {"colour": 1}}, {"extra": {}},
    {"access": {"permissions": -1}}, {"access": {"permissions": 2 ** 32}}, {"access": {"coap_resources": ["ota"]}},
    {"access": {"coap_resources": ["/ota\n"]}}, {"access": {"mqtt_topics": {"publish": ["a/#/b"]}}},
    {"access": {"mqtt_topics": {"retain": []}}}, {"access": {"token_scopes": ["Bad Scope"]}},
    {"update": {"mode": "sometimes"}}, {"update": {"allowed": "yes"}},
    {"update": {"window": {"start": "24:00", "end": "01:00", "tz": "UTC"}}},
    {"update": {"window": {"start": "01:00", "end": "02:00"}}},
    {"update": {"window": {"start": "01:00", "end": "02:00", "tz": "Mars/Olympus"}}},
    {"update": {"window": {"days": [], "start": "01:00", "end": "02:00", "tz": "UTC"}}},
])
def test_what_the_schema_forbids_is_refused(doc):
    with pytest.raises(ValidationError):
        core.validate_document(doc)


def test_protocols_are_cut_by_credential_types():
    auth = {**ALL_DEFAULT["auth"], "credential_types": ["x509"]}
    assert core.allowed_protocols(auth) == frozenset({"mqtt_cert"})


@pytest.mark.parametrize("auth, trust, attestation, reason", [
    ({"min_trust_level": 50, "attestation": "any"}, 50, "unknown", None),
    ({"min_trust_level": 50, "attestation": "any"}, 49, "unknown", "policy: trust level 49 below 50"),
    ({"min_trust_level": 0, "attestation": "not_failed"}, 0, "warning", None),
    ({"min_trust_level": 0, "attestation": "not_failed"}, 0, "contraindicated", "policy: attestation contraindicated"),
    ({"min_trust_level": 0, "attestation": "affirming"}, 70, "affirming", None),
    ({"min_trust_level": 0, "attestation": "affirming"}, 70, "unknown",
     "policy: attestation unknown, policy requires affirming"),
])
def test_trust_and_attestation(auth, trust, attestation, reason):
    assert core.auth_refusal(auth, trust, attestation) == reason


@pytest.mark.parametrize("resources, path, ok", [
    (None, "/anything", True), (["/ota/*"], "/ota", True), (["/ota/*"], "/ota/check", True),
    (["/ota/*"], "/otax", False), (["/auth"], "/auth", True), (["/auth"], "/auth/x", False), ([], "/auth", False)])
def test_coap_resources(resources, path, ok):
    assert core.coap_allowed(resources, path) is ok


@pytest.mark.parametrize("pattern, topic, ok", [
    ("telemetry/#", "telemetry", True), ("telemetry/#", "telemetry/a/b", True), ("telemetry/+", "telemetry/a", True),
    ("telemetry/+", "telemetry/a/b", False), ("cmd", "cmd", True), ("cmd", "cmd/x", False), ("#", "x/y", True),
    # subscription filters: covered only by a pattern at least as broad
    ("telemetry/+", "telemetry/#", False), ("telemetry/a", "telemetry/+", False), ("telemetry/+", "telemetry/+", True),
    ("telemetry/#", "telemetry/+/x", True), ("+/x", "#", False)])
def test_topic_matching(pattern, topic, ok):
    assert core.topic_matches(pattern, topic) is ok


# -- maintenance windows: unix times below are literal (UTC in the comments)

def _update(**window):
    return {"allowed": True, "mode": "window", "window": window}


def test_updates_not_allowed_and_manual_are_refused():
    assert core.update_decision({"allowed": False, "mode": "automatic", "window": None}, 0) == (
        "refused", "policy: updates not allowed", None)
    assert core.update_decision({"allowed": True, "mode": "manual", "window": None}, 0) == (
        "refused", "policy: manual updates (no rollout offers a release)", None)
    assert core.update_decision({"allowed": True, "mode": "window", "window": None}, 0) == (
        "refused", "policy: window mode without a window", None)


@pytest.mark.parametrize("now, expected", [
    # Tuesday 2026-01-06: 21:00 UTC is 22:00 in Berlin (CET, +1): inside 22:00-02:00
    (1767733200, ("offer", None, None)),
    # 00:59 UTC Wednesday is 01:59 Berlin: still inside the window that opened Tuesday 22:00
    (1767747540, ("offer", None, None)),
    # 01:00 UTC Wednesday is 02:00 Berlin: closed; next opening Wednesday 22:00 Berlin = 21:00 UTC 2026-01-07
    (1767747600, ("deferred", "policy: outside the maintenance window", 1767819600)),
    # 12:00 UTC Tuesday (13:00 Berlin): deferred until that evening, 21:00 UTC
    (1767700800, ("deferred", "policy: outside the maintenance window", 1767733200)),
])
def test_a_window_that_wraps_midnight(now, expected):
    assert core.update_decision(_update(start="22:00", end="02:00", tz="Europe/Berlin"), now) == expected


def test_days_name_the_day_the_window_opens():
    # only Saturdays 22:00-02:00 Berlin. Tuesday 2026-01-06 12:00 UTC -> Saturday 2026-01-10 21:00 UTC
    u = _update(days=["sat"], start="22:00", end="02:00", tz="Europe/Berlin")
    assert core.update_decision(u, 1767700800) == ("deferred", "policy: outside the maintenance window", 1768078800)
    # Sunday 2026-01-11 00:30 UTC (01:30 Berlin) is inside Saturday's window
    assert core.update_decision(u, 1768091400)[0] == "offer"


def test_across_the_spring_dst_change():
    # Berlin moves from CET (+1) to CEST (+2) on Sunday 2026-03-29 at 02:00 local (01:00 UTC).
    u = _update(start="03:00", end="04:00", tz="Europe/Berlin")
    # Saturday 03:00 CET is 02:00 UTC (1774663200); the window of Sunday opens 03:00 CEST = 01:00 UTC (1774746000)
    assert core.update_decision(u, 1774663200)[0] == "offer"
    assert core.update_decision(u, 1774670400) == ("deferred", "policy: outside the maintenance window", 1774746000)
    # 01:30 UTC Sunday is 03:30 CEST: inside; 02:00 UTC is 04:00 CEST: closed
    assert core.update_decision(u, 1774747800)[0] == "offer"
    assert core.update_decision(u, 1774749600)[2] == 1774832400   # Monday 03:00 CEST = 01:00 UTC


def test_a_start_inside_the_dst_gap_moves_forward():
    # 02:30 does not exist in Berlin on 2026-03-29: the window opens at 03:30 CEST (01:30 UTC), until 04:00
    u = _update(start="02:30", end="04:00", tz="Europe/Berlin")
    assert core.update_decision(u, 1774746000) == ("deferred", "policy: outside the maintenance window", 1774747800)
    assert core.update_decision(u, 1774747800)[0] == "offer"


def test_across_the_autumn_dst_change():
    # New York: EDT (-4) to EST (-5) on Sunday 2026-11-01 at 02:00 local. A 01:00-03:00 window that day opens at
    # the first 01:00 (EDT, 05:00 UTC) and closes at 03:00 EST (08:00 UTC): three hours long
    u = _update(start="01:00", end="03:00", tz="America/New_York")
    assert core.update_decision(u, 1793509200 - 1) == (
        "deferred", "policy: outside the maintenance window", 1793509200)
    assert core.update_decision(u, 1793509200 + 3 * 3600 - 1)[0] == "offer"
    assert core.update_decision(u, 1793509200 + 3 * 3600)[0] == "deferred"


def test_start_equal_to_end_is_the_whole_day():
    # Fridays only, 00:00-00:00 UTC: all of Friday 2026-01-02 (1767312000 .. 1767398399), nothing of Saturday
    u = _update(days=["fri"], start="00:00", end="00:00", tz="UTC")
    assert core.update_decision(u, 1767312000)[0] == "offer"
    assert core.update_decision(u, 1767398399)[0] == "offer"
    assert core.update_decision(u, 1767398400) == ("deferred", "policy: outside the maintenance window", 1767916800)
