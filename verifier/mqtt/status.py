"""Last-seen for MQTT devices the broker alone admits (docs/mqtt.md section 3, "Status and last-seen").

The broker checks certificate logins by itself; the verifier hears of them through the device's status
message: right after its CONNACK a janua device publishes `online` (QoS 0, not retained) to
`janua/<tenant short>/<device id>/status`. The broker's ACLs let only that device publish there (certificate
CN or dynamic-security role), so the topic names the device that connected. The verifier subscribes to
`janua/+/+/status` as the dynamic-security admin on the password listener (mosquitto routes messages across
listeners; per_listener_settings only separates authentication and ACLs) and, for a device of the tenant the
topic names, updates its last-seen time (auth_state.last_authenticated_at, as every other path does) and
audits it (kind auth, action mqtt.online, transport mqtt) - at most once per TOUCH_EVERY_S per device, so a
chatty device cannot flood the registry.

The subscriber starts once a broker is recorded in the registry (`janua mqtt config`; polled every POLL_S,
so the verifier starts without one), restarts when the record changes, and paho reconnects it when the
broker restarts (re-subscribing on every CONNACK). Storage is touched only on the event loop.

Board attestation over MQTT (docs/attestation.md 2.3) rides on the same connection: the subscriber also
reads `janua/+/+/attest` (evidence bytes a device publishes on its own prefix, which the ACLs let only it
do), appraises them (verifier.attest.core, transport mqtt) and publishes the JSON answer, or
`{"error": reason}`, on `<prefix>/attest/result`; and when a device's status message shows it online and
an attestation is due, it publishes `{"cmd": "attest", "nonce", "expires_at"}` on `<prefix>/cmd`.

Health reports (docs/health.md 2.3) too: the subscriber reads `janua/+/+/health` (a report a device publishes
on its own prefix, QoS 0) and hands the payload of an active device to the health ingest (via "mqtt"), which
decodes it and counts it (janua_health_reports_total{via="mqtt",result}); nothing is answered.
"""

import asyncio
import json
import logging
import secrets
import time

from verifier.appkeys import CONFIG, CORE, HEALTH, LIFECYCLE_HOOKS, SEALER, STORAGE
from verifier.attest import core as attest
from verifier.errors import VerifierError
from verifier.registry.model import parse_device_id
from verifier.mqtt.broker import (ADMIN_ACLS, ATTEST_FILTER, DYNSEC_TOPIC, HEALTH_FILTER, STATUS_FILTER, Broker,
                                  tenant_short_id)
from verifier.tokens.core import TOKEN_KEYS

log = logging.getLogger("janua.verifier.mqtt")

POLL_S = 2.0             # how often the registry is checked for a (new) broker record
TOUCH_EVERY_S = 10       # per device: status messages closer together only count once
QUEUE_MAX = 10000        # status messages waiting for the event loop; more are dropped


class Subscriber:
    """The paho side: a thread that keeps one admin connection and hands status topics to the loop."""

    def __init__(self, broker, loop, queue):
        self.broker, self.loop, self.queue = broker, loop, queue
        self.connected = 0           # CONNACKs seen (tests and logs)
        self.subscribed = 0          # SUBACKs seen: status messages from then on are heard
        c = broker.admin_client("janua-status-" + secrets.token_hex(4))
        c.reconnect_delay_set(1, 30)
        c.on_connect = self._on_connect
        c.on_subscribe = self._on_subscribe
        c.on_message = lambda cl, u, msg: loop.call_soon_threadsafe(self._put, (msg.topic, msg.payload))
        self.client = c

    def _put(self, message):
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            pass

    def _on_connect(self, client, userdata, flags, rc, props=None):
        if rc.is_failure:
            log.warning("status subscriber refused by the broker: %s", rc)
            return
        self.connected += 1
        # A dynsec.json written by an older version lacks the status ACL: add it (no reply awaited; an ACL
        # that exists is refused by the plugin and nothing changes), then subscribe on the same connection.
        cmds = [{"command": "addRoleACL", "rolename": "admin", "priority": 0, **a} for a in ADMIN_ACLS]
        client.publish(DYNSEC_TOPIC, json.dumps({"commands": cmds}), qos=1)
        client.subscribe([(STATUS_FILTER, 0), (ATTEST_FILTER, 0), (HEALTH_FILTER, 0)])

    def _on_subscribe(self, client, userdata, mid, rcs, props=None):
        if all(not r.is_failure for r in rcs):
            self.subscribed += 1
        else:
            log.error("the broker refused the status subscription %s: is the admin role missing its ACL?", rcs)

    def publish(self, topic, payload):
        self.client.publish(topic, payload, qos=1)

    def start(self):
        self.client.connect_async(self.broker.local_host, self.broker.dynsec_port, keepalive=30)
        self.client.loop_start()      # retries the first connection too

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()


def record(app, topic, seen, now):
    """Handle one status topic; returns what was done ("seen", "throttled" or why it was ignored)."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != "janua" or parts[3] != "status":
        return "not a status topic"
    did = parse_device_id(parts[2])
    st = app[STORAGE]
    dev = st.get_device(did) if did is not None else None
    if dev is None or tenant_short_id(dev["tenant_id"]) != parts[1]:
        return "unknown device"
    last = seen.get(did)
    if last is not None and 0 <= now - last < TOUCH_EVERY_S:
        return "throttled"
    if len(seen) > 100000:
        seen.clear()
    seen[did] = now
    if dev["status"] != "active":
        # Only a session opened before the suspension (the CRL reload does not cut it) can get here.
        st.add_audit([(now, dev["tenant_id"], "auth", did.hex(), None, "mqtt.online", "mqtt", None, "error",
                       f"status message from a {dev['status']} device")])
        return dev["status"]
    st.touch_last_seen(did, now)
    st.add_audit([(now, dev["tenant_id"], "auth", did.hex(), None, "mqtt.online", "mqtt", None, "ok", None)])
    return "seen"


def due_command(app, topic, now):
    """(topic, payload) of the attestation challenge to publish to a device that just came online, or None."""
    parts = topic.split("/")
    dev = app[STORAGE].get_device(parse_device_id(parts[2]))
    ch = attest.due_challenge(app[STORAGE], dev, now) if dev is not None and not dev["quarantined"] else None
    if ch is None:
        return None
    return ("/".join(parts[:3]) + "/cmd",
            json.dumps({"cmd": "attest", "nonce": ch["nonce"], "expires_at": ch["expires_at"]}).encode())


def record_attest(app, topic, payload, now):
    """Appraise evidence published on `janua/<tenant short>/<device id>/attest`: (answer topic, payload),
    with the device id third when the appraisal set or lifted its quarantine; None for a topic that names
    no device of its tenant (nothing is published there)."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != "janua" or parts[3] != "attest":
        return None
    did = parse_device_id(parts[2])
    st = app[STORAGE]
    dev = st.get_device(did) if did is not None else None
    if dev is None or tenant_short_id(dev["tenant_id"]) != parts[1]:
        return None
    reply = "/".join(parts[:3]) + "/attest/result"
    if bytes(payload[1:9]) != did:                   # only the topic's own device's evidence
        return reply, json.dumps({"error": "unknown_device"}).encode()
    try:
        result = attest.appraise(st, app[SEALER], app[TOKEN_KEYS], bytes(payload), now, "mqtt", None,
                                 app[CORE].summary)
    except attest.AttestRefused as e:
        return reply, json.dumps({"error": e.reason}).encode()
    if result["changed_quarantine"]:
        app[CORE].forget(did)                     # run() then runs the lifecycle hooks (like the lifecycle route)
        return reply, json.dumps(attest.answer(result)).encode(), did
    return reply, json.dumps(attest.answer(result)).encode()


def record_health(app, topic, payload, now):
    """Hand a report published on `janua/<tenant short>/<device id>/health` to the health ingest (docs/health.md
    2.3): its result ("ok" or the refusal reason), or why it was not handed over (the topic names no device of
    its tenant, the device is not active or is compromised, no health feature)."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != "janua" or parts[3] != "health":
        return "not a health topic"
    did = parse_device_id(parts[2])
    dev = app[STORAGE].get_device(did) if did is not None else None
    if dev is None or tenant_short_id(dev["tenant_id"]) != parts[1]:
        return "unknown device"
    if dev["status"] != "active" or dev["compromised"]:
        # a session opened before the suspension (the CRL reload does not cut it): its reports are not kept
        return "compromised" if dev["compromised"] else dev["status"]
    ingest = app.get(HEALTH)
    if ingest is None:
        return "no health ingest"
    return ingest.ingest(did, dev["tenant_id"], "mqtt", bytes(payload), now)


async def run(app, state):
    """The task verifier.mqtt.routes.ctx starts: (re)start the subscriber as the broker record says, apply messages."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue(QUEUE_MAX)
    seen, sub, stamp, checked = {}, None, None, 0.0
    try:
        while True:
            if time.monotonic() - checked >= POLL_S:
                checked = time.monotonic()
                row = app[STORAGE].get_mqtt_broker()
                key = None if row is None else (row["config_dir"], row["dynsec_port"], row["updated"])
                if key != stamp:
                    if sub is not None:
                        await asyncio.to_thread(sub.stop)
                        sub = state.status = None
                    stamp = key
                    if row is not None:
                        try:
                            sub = Subscriber(Broker(row, app[SEALER]), loop, queue)
                            sub.start()
                            state.status = sub
                        except (VerifierError, OSError, ValueError) as e:
                            log.error("status subscriber not started: %s", e)
                            sub = None
            try:
                topic, payload = await asyncio.wait_for(queue.get(), POLL_S)
            except asyncio.TimeoutError:
                continue
            now = int(app[CONFIG].clock())
            try:
                if topic.endswith("/attest"):
                    out = record_attest(app, topic, payload, now)
                elif topic.endswith("/health"):
                    out = None
                    result = record_health(app, topic, payload, now)
                    if result != "ok":
                        log.debug("MQTT health report on %s: %s", topic, result)
                elif record(app, topic, seen, now) == "seen":
                    out = due_command(app, topic, now)
                else:
                    out = None
                if out is not None and sub is not None:
                    sub.publish(out[0], out[1])
                if out is not None and len(out) == 3:
                    for hook in app.get(LIFECYCLE_HOOKS, ()):
                        await hook(app, out[2], now)
            except VerifierError as e:
                log.error("MQTT message not recorded: %s", e)
    finally:
        if sub is not None:
            sub.stop()
