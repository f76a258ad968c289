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
"""

import asyncio
import json
import logging
import secrets
import time

from verifier.appkeys import CONFIG, SEALER, STORAGE
from verifier.errors import VerifierError
from verifier.registry.model import parse_device_id
from verifier.mqtt.broker import ADMIN_ACLS, DYNSEC_TOPIC, STATUS_FILTER, Broker, tenant_short_id

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
        c.on_message = lambda cl, u, msg: loop.call_soon_threadsafe(self._put, msg.topic)
        self.client = c

    def _put(self, topic):
        try:
            self.queue.put_nowait(topic)
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
        client.subscribe(STATUS_FILTER, qos=0)

    def _on_subscribe(self, client, userdata, mid, rcs, props=None):
        if all(not r.is_failure for r in rcs):
            self.subscribed += 1
        else:
            log.error("the broker refused the status subscription %s: is the admin role missing its ACL?", rcs)

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
                topic = await asyncio.wait_for(queue.get(), POLL_S)
            except asyncio.TimeoutError:
                continue
            try:
                record(app, topic, seen, int(app[CONFIG].clock()))
            except VerifierError as e:
                log.error("status message not recorded: %s", e)
    finally:
        if sub is not None:
            sub.stop()
