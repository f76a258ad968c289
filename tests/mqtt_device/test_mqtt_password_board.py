"""The board's MQTT password (janua.mqtt.connect(cfg, password=...)) on the broker's TLS password listener
(dynamic security), on the unix port with the esp32 heap against a real mosquitto running the config the
verifier generates; the password comes from the verifier's admin API, which also suspends and resumes the
device. And the status message every janua.mqtt session starts with."""

import asyncio

import pytest

from tests.mqtt_device.conftest import KEK, NOW, put_board
from tests.mqtt_device.test_mqtt_board import board_run
from verifier.registry import core as registry
from verifier.app import create_app
from verifier.config import Config

LOGIN = """
s = mqtt.connect(cfg, password=%s)
s.publish("up", %r)
report(ok=True)
s.close()
"""


@pytest.fixture
async def admin(pki, broker, aiohttp_client):
    """(aiohttp client of a verifier on the PKI's registry, admin headers of tenant acme)."""
    app = create_app(Config(db_path=str(pki.work / "janua.db"), kek=KEK, http_port=0, udp_port=None,
                            dtls_port=None))
    client = await aiohttp_client(app)
    _, token = registry.issue_token(pki.storage, pki.tenants["acme"]["id"], NOW)
    return client, {"Authorization": f"Bearer {token}"}


async def password_board(admin, pki, flash, dev):
    client, headers = admin
    pki.storage.update_device(pki.tenants["acme"]["id"], bytes.fromhex(dev["id"]), {"status": "active"})
    r = await client.post(f"/v1/devices/{dev['id']}/mqtt-password", headers=headers)
    assert r.status == 201, await r.text()
    pw = await r.json()
    assert pw["broker"]["port"] == pki.conf["dynsec_port"]
    put_board(flash, dev, {"password_port": pw["broker"]["port"], "password": pw["password"]})
    return pw


async def test_board_logs_in_with_its_password_over_tls_and_publishes(pki, broker, watcher, board, admin):
    mp, flash = board
    dev = pki.device()
    await password_board(admin, pki, flash, dev)
    out = await asyncio.to_thread(board_run, mp, LOGIN % ('cfg["mqtt"]["password"]', b"by password"))
    assert out == [{"ok": True}], out
    # the watcher sits on the certificate listener: the broker routes across listeners
    assert watcher.wait_for(dev["prefix"] + "/up", b"by password"), broker.log[-2000:]
    assert watcher.wait_for(dev["prefix"] + "/status", b"online")


@pytest.mark.parametrize("password", ["wrong", "another_devices"])
async def test_password_login_is_refused_with_a_wrong_password(pki, broker, board, admin, password):
    mp, flash = board
    dev, twin = pki.device(), pki.device()
    twin_pw = await password_board(admin, pki, flash, twin)
    pw = await password_board(admin, pki, flash, dev)
    guess = repr(pw["password"][:-3] + "xyz") if password == "wrong" else repr(twin_pw["password"])
    out = await asyncio.to_thread(board_run, mp, LOGIN % (guess, b"x"))
    assert out[0].get("error") == "MQTTRefused" and out[0]["code"] in (4, 5), out


async def test_suspended_devices_password_login_is_refused_until_resumed(pki, broker, board, admin):
    client, headers = admin
    mp, flash = board
    dev = pki.device()
    await password_board(admin, pki, flash, dev)
    login = LOGIN % ('cfg["mqtt"]["password"]', b"x")
    assert await asyncio.to_thread(board_run, mp, login) == [{"ok": True}]
    r = await client.post(f"/v1/devices/{dev['id']}/lifecycle", json={"action": "suspend"}, headers=headers)
    assert r.status == 200
    out = await asyncio.to_thread(board_run, mp, login)
    assert out[0].get("error") == "MQTTRefused" and out[0]["code"] == 5, out     # CONNACK: not authorized
    r = await client.post(f"/v1/devices/{dev['id']}/lifecycle", json={"action": "resume"}, headers=headers)
    assert r.status == 200
    assert await asyncio.to_thread(board_run, mp, login) == [{"ok": True}]


def test_status_message_can_be_turned_off(pki, broker, watcher, board):
    mp, flash = board
    dev = pki.device()
    put_board(flash, dev, {"status": False})
    out = board_run(mp, "s = mqtt.connect(cfg)\ns.publish('up', b'quiet')\nreport(ok=True)\ns.close()")
    assert out == [{"ok": True}], out
    assert watcher.wait_for(dev["prefix"] + "/up", b"quiet")
    assert (dev["prefix"] + "/status", b"online") not in watcher.messages
