"""Notifications (docs/api.md "Notifications"): the events features emit for a tenant's security team,
and the sans-IO parts of their delivery as signed webhooks.

`emit` writes to the outbox in the caller's transaction; delivery (verifier/notify/delivery.py) reads
the outbox. This module holds what needs no I/O: the webhook fields and their checks, the signing
secret's text form, the request body and its `X-Janua-Signature` (and a reference check of it, for
receivers and tests), and the retry schedule. Time is always an argument. It does not send anything,
read the clock or touch storage except through `emit`'s one call."""

import base64
import hashlib
import hmac
import json
import os
import re

from verifier.config import is_http_url
from verifier.errors import ValidationError
from verifier.keys import ct_eq
from verifier.registry.model import TEXT_PATTERN

EVENTS = ("attestation.failed", "attestation.missed", "device.quarantined", "device.released",
          "gateway.attestation.failed", "gateway.cut_off", "alert.opened")
TEST_EVENT = "webhook.test"     # queued by POST /v1/webhooks/{id}/test, for that one webhook only

# Waits after a failed attempt: the n-th failure waits RETRY_S[n-1]; after the last one the delivery is
# failed. So at most 1 + len(RETRY_S) = 7 attempts over about 8 h 36 min.
RETRY_S = (10, 60, 300, 1800, 7200, 21600)
TIMEOUT_S = 5.0                 # per attempt: connect, send and the response's head and first bytes
RESPONSE_KEEP = 256             # bytes of a response body kept in the delivery log
SIGNATURE_TOLERANCE_S = 300     # what verify_signature accepts by default between t and the receiver's clock

URL_MAX = 2048
SECRET_LEN = 32
WEBHOOK_ID_PREFIX = "whk_"
WEBHOOK_ID_PATTERN = "^whk_[0-9a-f]{16}$"
# The URL shape the schema states and the server accepts (the schema is the validation): http or https,
# a DNS name or IPv4 address (no user:password@, which would sit in the clear in every listing; no IPv6
# literal), an optional port 0-65535, then printable ASCII only (percent-encode anything else).
_PORT = "(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
URL_PATTERN = f"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9._~-]+(:{_PORT})?([/?#][!-~]*)?$"
_URL = re.compile(URL_PATTERN[:-1] + "\\Z")
_TEXT = re.compile(TEXT_PATTERN[:-1] + "\\Z")
_WEBHOOK_ID = re.compile(WEBHOOK_ID_PATTERN[:-1] + "\\Z")


def emit(storage, tenant_id, event, data, now):
    """Queue `event` (one of EVENTS) with `data` (a JSON-able dict) for the tenant's webhooks."""
    if event not in EVENTS:
        raise ValueError(f"unknown notification event {event}")
    return storage.add_notification(tenant_id, event, data, now)


# webhooks

def check_new_webhook(doc):
    """The fields of a POST /v1/webhooks body as {url, events, description}; ValidationError otherwise.
    The same rules as the NewWebhook schema (verifier/notify/openapi.py)."""
    if not isinstance(doc, dict):
        raise ValidationError("the body must be a JSON object")
    unknown = set(doc) - {"url", "events", "description"}
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(sorted(unknown))}")
    url = doc.get("url")
    if not isinstance(url, str) or len(url) > URL_MAX or not _URL.match(url) or not is_http_url(url):
        raise ValidationError(f"url must be an http:// or https:// URL of at most {URL_MAX} printable ASCII "
                              "characters, with a host name or IPv4 address and no user:password@")
    events = doc.get("events", list(EVENTS))
    if (not isinstance(events, list) or not events or any(not isinstance(e, str) or e not in EVENTS for e in events)
            or len(set(events)) != len(events)):
        raise ValidationError(f"events must be a non-empty list of distinct events out of {', '.join(EVENTS)}")
    description = doc.get("description")
    if "description" in doc and (not isinstance(description, str) or not _TEXT.match(description)):
        raise ValidationError("description must be 1 to 128 characters without control characters")
    return {"url": url, "events": [e for e in EVENTS if e in events], "description": description}


def is_webhook_id(text):
    return isinstance(text, str) and bool(_WEBHOOK_ID.match(text))


def new_webhook_id(rand=os.urandom):
    return WEBHOOK_ID_PREFIX + rand(8).hex()


def new_secret(rand=os.urandom):
    """32 random bytes: a webhook's signing secret (sealed at rest; its text form is shown once)."""
    return rand(SECRET_LEN)


def secret_text(secret):
    """The secret as the API shows it once and receivers keep: unpadded base64url (43 characters).
    The HMAC key is this text's ASCII bytes, not the bytes it decodes to (docs/api.md)."""
    return base64.urlsafe_b64encode(secret).rstrip(b"=").decode()


def seal_id(webhook_id):
    """The 16-byte `device_id` argument the KEK sealer binds a webhook's secret to: "webhook/" and the
    id's 8 random bytes. A device's is 8 bytes, so the sealed AAD of a webhook secret never equals a
    device's (a sealed value cannot be moved between the two tables, or between webhooks)."""
    return b"webhook/" + bytes.fromhex(webhook_id[len(WEBHOOK_ID_PREFIX):])


def matches(webhook, event, data):
    """Whether an outbox event goes to this webhook: a subscribed event, or the webhook's own test."""
    if event == TEST_EVENT:
        return data.get("webhook_id") == webhook["id"]
    return event in webhook["events"]


# the request

def encode_body(event_id, event, tenant_id, created, data):
    """The JSON body of every attempt of a delivery (compact, keys sorted): the same bytes each time."""
    return json.dumps({"id": event_id, "event": event, "tenant": tenant_id, "created": created, "data": data},
                      separators=(",", ":"), sort_keys=True).encode()


def _mac(secret_text_, t, body):
    return hmac.new(secret_text_.encode("ascii"), str(int(t)).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secret_text_, t, body):
    """The X-Janua-Signature header value: "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." || body)>"."""
    return f"t={int(t)},v1={_mac(secret_text_, t, body)}"


def verify_signature(secret_text_, header, body, now, tolerance_s=SIGNATURE_TOLERANCE_S):
    """What a receiver does (docs/api.md): parse the header, recompute the MAC over the raw body, compare
    in constant time, then check that t is within tolerance_s of `now`. Returns t; ValueError otherwise."""
    if not isinstance(header, str) or len(header) > 512:
        raise ValueError("no signature header")
    t, macs = None, []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            t = int(value)
        elif name == "v1":
            macs.append(value)
    if t is None or not macs:
        raise ValueError("malformed signature header")
    expected = _mac(secret_text_, t, body).encode()
    if not any(ct_eq(expected, m.encode("ascii", "replace")) for m in macs):
        raise ValueError("signature does not verify")
    if abs(int(now) - t) > tolerance_s:
        raise ValueError("signature timestamp outside the tolerance")
    return t


def after_failure(attempts, now):
    """(state, next_at) once attempt number `attempts` (1-based) failed at `now`: pending with the
    schedule's wait, or failed (next_at None) after the last."""
    if attempts <= len(RETRY_S):
        return "pending", int(now) + RETRY_S[attempts - 1]
    return "failed", None
