"""Device policies (docs/policies.md): the policy document, its validation, the effective policy of a device and
the decisions the transports ask of it. Sans-IO: documents in, answers out; time is a parameter.

A policy document has three sections (auth, access, update) whose fields are all optional. Documents are set at
four scopes; a device's effective policy takes each field from the most specific scope that sets it
(tenant < model < group < device, `effective`), and a field no scope sets keeps today's behaviour (the tenant
Policy of verifier/registry/model.py, the device's columns). What it deliberately does not do: read storage (the
documents are given), or know any transport's codes (each transport maps a refusal to its own)."""

import collections
import datetime
import re
import zoneinfo

from verifier.errors import ValidationError
from verifier.registry.model import MAX_TEXT, TEXT_CHARS, as_int

SCOPES = ("tenant", "model", "group", "device")      # in merge order: a later scope wins
TENANT_KEY = "default"
PROTOCOLS = ("binauth_udp", "binauth_http", "dtls", "mqtt_cert", "mqtt_password", "token")
# the credential each protocol authenticates with: the master secret's derived keys, an X.509 certificate, a password
CREDENTIAL_TYPES = ("symmetric", "x509", "password")
PROTOCOL_CREDENTIAL = {"binauth_udp": "symmetric", "binauth_http": "symmetric", "dtls": "symmetric",
                       "token": "symmetric", "mqtt_cert": "x509", "mqtt_password": "password"}
ATTESTATION = ("any", "not_failed", "affirming")
UPDATE_MODES = ("automatic", "manual", "window")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_ITEMS = 32
TOKEN_TTL = (60, 30 * 86400)                          # as the tenant policy's token_ttl_s
DRIFT = (0, 86400)                                    # as the tenant policy's drift_s
HHMM = "^([01][0-9]|2[0-3]):[0-5][0-9]$"
# a CoAP resource: an absolute path of 1..8 segments of [a-z0-9_-]; `/ota/*` covers /ota and everything under it
COAP_PATH = "^(/[a-z0-9_-]{1,32}){1,8}(/[*])?$"
# an MQTT topic filter relative to the device's prefix (docs/mqtt.md): levels of [A-Za-z0-9_-], `+` for one level,
# a final `#` for the rest
TOPIC = "^(([A-Za-z0-9_-]{1,64}|[+])(/([A-Za-z0-9_-]{1,64}|[+])){0,7}(/#)?|#)$"
SCOPE_TEXT = "^[a-z][a-z0-9_.:-]{0,63}$"
TIMEZONES = tuple(sorted(zoneinfo.available_timezones()))
# a model or group key: a text field (verifier/registry/model.py) without "/", as it is one segment of the path
KEY_PATTERN = "^" + TEXT_CHARS.replace(" -~", " -.0-~") + "{1," + str(MAX_TEXT) + "}$"

_HHMM, _COAP, _TOPIC, _SCOPE = re.compile(HHMM), re.compile(COAP_PATH), re.compile(TOPIC), re.compile(SCOPE_TEXT)
_TEXT_KEY = re.compile(KEY_PATTERN)
_TZ = frozenset(TIMEZONES)
_DEVICE_KEY = re.compile("^[0-9a-f]{16}$")

# field path -> its section and name; the merge and the source report go field by field in this order
FIELDS = ("auth.protocols", "auth.credential_types", "auth.min_trust_level", "auth.attestation", "auth.token_ttl_s",
          "auth.drift_s", "access.permissions", "access.coap_resources", "access.mqtt_topics", "access.token_scopes",
          "update.mode", "update.window", "update.allowed")
SECTIONS = {"auth": ("protocols", "credential_types", "min_trust_level", "attestation", "token_ttl_s", "drift_s"),
            "access": ("permissions", "coap_resources", "mqtt_topics", "token_scopes"),
            "update": ("mode", "window", "allowed")}


def validate_key(scope, key):
    """True when `key` names something of `scope`: "default" for the tenant, a text for a model or a group, a
    device id (16 lowercase hex) for a device."""
    if scope == "tenant":
        return key == TENANT_KEY
    if scope == "device":
        return bool(_DEVICE_KEY.fullmatch(key))
    return scope in SCOPES and bool(_TEXT_KEY.fullmatch(key))


def _fail(path, what):
    raise ValidationError(f"policy.{path} must be {what}")


def _int(v, path, lo, hi):
    n = as_int(v)
    if n is None or not lo <= n <= hi:
        _fail(path, f"an integer in [{lo}, {hi}]")
    return n


def _list(v, path, check, what, enum=None):
    if not isinstance(v, list) or len(v) > MAX_ITEMS or len(set(map(str, v))) != len(v):
        _fail(path, f"a list of at most {MAX_ITEMS} distinct {what}")
    for x in v:
        if (not isinstance(x, str) or (enum is not None and x not in enum)
                or (check is not None and not check.fullmatch(x))):
            _fail(path, f"a list of at most {MAX_ITEMS} distinct {what}")
    return list(v)


def _object(doc, path, known):
    if not isinstance(doc, dict):
        _fail(path, "an object")
    unknown = set(doc) - set(known)
    if unknown:
        raise ValidationError(f"unknown fields in policy.{path}: {', '.join(sorted(unknown))}")


def _window(w):
    _object(w, "update.window", ("days", "start", "end", "tz"))
    for f in ("start", "end", "tz"):
        if f not in w:
            _fail("update.window", "an object with start, end and tz")
    out = {}
    if "days" in w:
        days = _list(w["days"], "update.window.days", None, "days (mon..sun)", DAYS)
        if not days:
            _fail("update.window.days", "a non-empty list of days (mon..sun)")
        out["days"] = [d for d in DAYS if d in days]
    for f in ("start", "end"):
        if not isinstance(w[f], str) or not _HHMM.fullmatch(w[f]):
            _fail(f"update.window.{f}", "a time HH:MM (00:00 to 23:59)")
        out[f] = w[f]
    if not isinstance(w["tz"], str) or w["tz"] not in _TZ:
        _fail("update.window.tz", "an IANA time zone name")
    out["tz"] = w["tz"]
    return out


def validate_document(doc):
    """A policy document as stored (canonical: days in week order); ValidationError for anything the OpenAPI
    schema PolicyDocument does not allow. An empty document is valid (it sets nothing)."""
    _object(doc, "", SECTIONS)
    out = {}
    if "auth" in doc:
        auth = doc["auth"]
        _object(auth, "auth", SECTIONS["auth"])
        a = out["auth"] = {}
        if "protocols" in auth:
            a["protocols"] = _list(auth["protocols"], "auth.protocols", None, "protocols", PROTOCOLS)
        if "credential_types" in auth:
            a["credential_types"] = _list(auth["credential_types"], "auth.credential_types", None,
                                          "credential types", CREDENTIAL_TYPES)
        if "min_trust_level" in auth:
            a["min_trust_level"] = _int(auth["min_trust_level"], "auth.min_trust_level", 0, 100)
        if "attestation" in auth:
            if auth["attestation"] not in ATTESTATION:
                _fail("auth.attestation", "one of " + ", ".join(ATTESTATION))
            a["attestation"] = auth["attestation"]
        if "token_ttl_s" in auth:
            a["token_ttl_s"] = _int(auth["token_ttl_s"], "auth.token_ttl_s", *TOKEN_TTL)
        if "drift_s" in auth:
            a["drift_s"] = _int(auth["drift_s"], "auth.drift_s", *DRIFT)
    if "access" in doc:
        access = doc["access"]
        _object(access, "access", SECTIONS["access"])
        a = out["access"] = {}
        if "permissions" in access:
            a["permissions"] = _int(access["permissions"], "access.permissions", 0, 0xFFFFFFFF)
        if "coap_resources" in access:
            a["coap_resources"] = _list(access["coap_resources"], "access.coap_resources", _COAP, "CoAP paths")
        if "mqtt_topics" in access:
            t = access["mqtt_topics"]
            _object(t, "access.mqtt_topics", ("publish", "subscribe"))
            a["mqtt_topics"] = {k: _list(t.get(k, []), f"access.mqtt_topics.{k}", _TOPIC, "topic filters")
                                for k in ("publish", "subscribe")}
        if "token_scopes" in access:
            a["token_scopes"] = _list(access["token_scopes"], "access.token_scopes", _SCOPE, "scopes")
    if "update" in doc:
        update = doc["update"]
        _object(update, "update", SECTIONS["update"])
        u = out["update"] = {}
        if "mode" in update:
            if update["mode"] not in UPDATE_MODES:
                _fail("update.mode", "one of " + ", ".join(UPDATE_MODES))
            u["mode"] = update["mode"]
        if "window" in update:
            u["window"] = _window(update["window"])
        if "allowed" in update:
            if not isinstance(update["allowed"], bool):
                _fail("update.allowed", "true or false")
            u["allowed"] = update["allowed"]
    return out


# -- the effective policy ------------------------------------------------------------------------

def defaults(tenant_policy, device):
    """Today's behaviour, field by field, for a device row and its tenant's Policy: what a field no scope sets is."""
    return {"auth.protocols": list(PROTOCOLS), "auth.credential_types": list(CREDENTIAL_TYPES),
            "auth.min_trust_level": 0, "auth.attestation": "any", "auth.token_ttl_s": tenant_policy.token_ttl_s,
            "auth.drift_s": tenant_policy.drift_s, "access.permissions": device["permissions"],
            "access.coap_resources": None, "access.mqtt_topics": None, "access.token_scopes": None,
            "update.mode": "automatic", "update.window": None, "update.allowed": True}


# where a default comes from (the "source" of a field no scope sets)
DEFAULT_SOURCES = {"auth.token_ttl_s": "tenant_policy", "auth.drift_s": "tenant_policy",
                   "access.permissions": "device_column"}


def scope_chain(device):
    """The (scope, key) pairs that apply to `device` (a device row: id, model_id, metadata), in merge order."""
    chain = [("tenant", TENANT_KEY)]
    if device.get("model_id"):
        chain.append(("model", device["model_id"]))
    group = (device.get("metadata") or {}).get("group")
    if group:
        chain.append(("group", group))
    chain.append(("device", device["id"].hex()))
    return chain


def effective(documents, tenant_policy, device):
    """The device's effective policy: (document with every field, {field path: source}). `documents` maps
    (scope, key) to a stored document; a field comes from the last scope of scope_chain(device) that sets it
    (source "tenant", "model:<id>", "group:<name>" or "device"), else from defaults() (source "default",
    "tenant_policy" or "device_column"). THE one merge: every transport asks this function."""
    values = defaults(tenant_policy, device)
    sources = {f: DEFAULT_SOURCES.get(f, "default") for f in FIELDS}
    for scope, key in scope_chain(device):
        doc = documents.get((scope, key))
        if not doc:
            continue
        label = scope if scope in ("tenant", "device") else f"{scope}:{key}"
        for section, names in SECTIONS.items():
            part = doc.get(section) or {}
            for name in names:
                if name in part:
                    values[f"{section}.{name}"] = part[name]
                    sources[f"{section}.{name}"] = label
    out = {s: {n: values[f"{s}.{n}"] for n in names} for s, names in SECTIONS.items()}
    return out, sources


# -- decisions ---------------------------------------------------------------------------------

# what the authentication paths need of the effective policy, small enough to sit in binary auth's device cache
AuthRule = collections.namedtuple("AuthRule", "protocols refusal drift_s permissions")


def auth_refusal(auth, trust_level, attestation_status):
    """Why the device's trust or attestation does not meet `auth` (the effective auth section), or None."""
    if trust_level < auth["min_trust_level"]:
        return f"policy: trust level {trust_level} below {auth['min_trust_level']}"
    need = auth["attestation"]
    if need == "not_failed" and attestation_status == "contraindicated":
        return "policy: attestation contraindicated"
    if need == "affirming" and attestation_status != "affirming":
        return f"policy: attestation {attestation_status}, policy requires affirming"
    return None


def allowed_protocols(auth):
    """The protocols `auth` allows: in auth.protocols, with a credential type in auth.credential_types."""
    creds = set(auth["credential_types"])
    return frozenset(p for p in auth["protocols"] if PROTOCOL_CREDENTIAL[p] in creds)


def protocol_refusal(auth, protocol, trust_level, attestation_status):
    """Why `protocol` is refused to the device under `auth`, or None: the reason for the audit trail."""
    if protocol not in allowed_protocols(auth):
        return f"policy: protocol {protocol} not allowed"
    return auth_refusal(auth, trust_level, attestation_status)


def auth_rule(policy, trust_level, attestation_status):
    """The AuthRule of an effective policy for a device of that trust and attestation status."""
    auth = policy["auth"]
    return AuthRule(allowed_protocols(auth), auth_refusal(auth, trust_level, attestation_status),
                    auth["drift_s"], policy["access"]["permissions"])


def encode_auth_rule(rule):
    """An AuthRule as JSON, for an edge verifier's device entry (docs/policies.md 4)."""
    return {"protocols": sorted(rule.protocols), "refusal": rule.refusal, "drift_s": rule.drift_s,
            "permissions": rule.permissions}


def decode_auth_rule(doc):
    """encode_auth_rule's JSON -> AuthRule; ValueError for anything else (it comes from the network)."""
    ok = isinstance(doc, dict) and set(doc) == {"protocols", "refusal", "drift_s", "permissions"}
    if ok:
        protocols, refusal = doc["protocols"], doc["refusal"]
        ok = isinstance(protocols, list) and all(isinstance(p, str) and p in PROTOCOLS for p in protocols) \
            and (refusal is None or isinstance(refusal, str)) and type(doc["drift_s"]) is int \
            and type(doc["permissions"]) is int
    if not ok:
        raise ValueError("not an auth rule")
    return AuthRule(frozenset(protocols), refusal, doc["drift_s"], doc["permissions"])


def coap_allowed(resources, path):
    """Whether the CoAP resource `path` (e.g. "/ota/check") is allowed by access.coap_resources (None: all)."""
    if resources is None:
        return True
    for r in resources:
        if r.endswith("/*"):
            base = r[:-2]
            if path == base or path.startswith(base + "/"):
                return True
        elif path == r:
            return True
    return False


def topic_matches(pattern, topic):
    """Whether the relative filter `pattern` covers the relative topic name or subscription filter `topic` (every
    topic `topic` matches, `pattern` matches: MQTT 3.1.1 4.7 wildcards; "+" in `topic` needs "+" or "#" in
    `pattern`, "#" in `topic` needs "#")."""
    p, t = pattern.split("/"), topic.split("/")
    for i, level in enumerate(p):
        if level == "#":
            return True
        if i >= len(t) or t[i] == "#":
            return False
        if level != "+" and level != t[i]:
            return False
        if t[i] == "+" and level != "+":
            return False
    return len(p) == len(t)


MQTT_ACCESS = {1: ("subscribe",), 2: ("publish",), 3: ("publish", "subscribe"), 4: ("subscribe",)}


def mqtt_topic_allowed(topics, relative, acc):
    """Whether access.mqtt_topics (None: the device's whole subtree) allows `relative` (the topic below the device's
    prefix) for the go-auth access `acc` (1 read, 2 write, 3 both, 4 subscribe): reading and subscribing need a
    subscribe pattern, writing a publish pattern."""
    if topics is None:
        return True
    if not relative:
        return False
    return all(any(topic_matches(p, relative) for p in topics[kind]) for kind in MQTT_ACCESS[acc])


# -- update windows ------------------------------------------------------------------------------

Update = collections.namedtuple("Update", "decision reason deferred_until")   # decision: offer | deferred | refused


def _minutes(hhmm):
    return int(hhmm[:2]) * 60 + int(hhmm[3:])


def _wall(day, minute, tz):
    """The unix time of wall-clock `minute` of `day` in `tz`; a time inside a DST gap moves forward by the gap,
    one that occurs twice is its first occurrence."""
    t = datetime.datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=tz)
    return int(t.astimezone(datetime.timezone.utc).timestamp())


def _window_opens(window, now, tz):
    """(inside, the unix time it (last or next) opens) at unix time `now`. A window opens on each of its days at
    start and closes at end, on the next day when end <= start (it wraps midnight; start == end: the whole day).
    Compared as unix times, so a DST change shortens or lengthens the window's day, not the window's wall times."""
    days = window.get("days") or list(DAYS)
    start, end = _minutes(window["start"]), _minutes(window["end"])
    length = (end - start) % 1440 or 1440
    today = datetime.datetime.fromtimestamp(now, tz).date()
    # the openings around `now`: yesterday's may still be open (it wraps past midnight), then the next seven days'
    for delta in range(-1, 8):
        day = today + datetime.timedelta(days=delta)
        if DAYS[day.weekday()] not in days:
            continue
        opens = _wall(day, start, tz)
        closes = _wall(day + datetime.timedelta(days=(start + length) // 1440), (start + length) % 1440, tz)
        if opens <= now < closes:
            return True, opens
        if opens > now:
            return False, opens
    return False, None


def update_decision(update, now):
    """Whether a device under the effective update section may be offered a release at unix time `now`."""
    if not update["allowed"]:
        return Update("refused", "policy: updates not allowed", None)
    mode = update["mode"]
    if mode == "automatic":
        return Update("offer", None, None)
    if mode == "manual":
        return Update("refused", "policy: manual updates (no rollout offers a release)", None)
    window = update["window"]
    if window is None:
        return Update("refused", "policy: window mode without a window", None)
    inside, opens = _window_opens(window, int(now), zoneinfo.ZoneInfo(window["tz"]))
    if inside:
        return Update("offer", None, None)
    return Update("deferred", "policy: outside the maintenance window", opens)
