"""`janua mqtt config` / `janua mqtt ca` on a registry file, and the written directory in a real mosquitto."""

from cryptography import x509

from tests.mosquitto import Mosquitto, free_ports
from tools.cli import main
from verifier.registry import core as registry
from verifier.store import SQLiteStorage


def test_mqtt_config_and_ca(tmp_path, capsys):
    db, kek = str(tmp_path / "j.db"), tmp_path / "kek"
    kek.write_text("11" * 32)
    st = SQLiteStorage(db)
    for name in ("acme", "beta"):
        registry.create_tenant(st, name, 1_800_000_000)
    st.close()
    base, p1, p2 = free_ports(3)
    assert main(["mqtt", "config", "--db", db, "--kek-file", str(kek), "--out", str(tmp_path / "b"),
                 "--base-port", str(base)]) == 0
    lines = capsys.readouterr().out.split()
    assert lines[0] == "acme" and lines[2] == "beta"
    conf = (tmp_path / "b" / "mosquitto.conf").read_text()
    assert "require_certificate true" in conf and "crlfile" in conf
    from tests.mqtt_verifier.conftest import require_clientid_plugin
    assert conf.count(f"plugin {require_clientid_plugin()}\n") == 2     # the default: the plugin `make` builds
    with Mosquitto(tmp_path / "mq", conf=tmp_path / "b") as mq:
        assert len(mq.ports) == 3
    assert main(["mqtt", "ca", "--db", db, "--kek-file", str(kek), "--tenant", "acme"]) == 0
    ca = x509.load_pem_x509_certificate(capsys.readouterr().out.encode())
    assert ca.subject.rfc4514_string() == "O=acme,CN=janua acme CA"
    # running it again keeps the ports, the dynsec admin secret and the CA
    assert main(["mqtt", "config", "--db", db, "--kek-file", str(kek), "--out", str(tmp_path / "b"),
                 "--base-port", str(base)]) == 0
    assert capsys.readouterr().out.split() == lines
    assert main(["mqtt", "ca", "--db", db, "--kek-file", str(kek), "--tenant", "nope"]) == 1


def test_password_tenant_chooses_the_password_listeners_certificate(tmp_path, capsys):
    db, kek = str(tmp_path / "j.db"), tmp_path / "kek"
    kek.write_text("11" * 32)
    st = SQLiteStorage(db)
    ids = {n: registry.create_tenant(st, n, 1_800_000_000)["id"] for n in ("acme", "beta")}
    st.close()
    base = free_ports(1)[0]
    args = ["mqtt", "config", "--db", db, "--kek-file", str(kek), "--out", str(tmp_path / "b"), "--base-port", str(base)]
    assert main(args + ["--password-tenant", "nope"]) == 1
    assert main(args + ["--password-tenant", "beta"]) == 0
    assert "for tenant beta" in capsys.readouterr().err
    from verifier.mqtt.broker import tenant_short_id
    conf = (tmp_path / "b" / "mosquitto.conf").read_text()
    listener = conf[conf.index(f"listener {base} "):]
    assert f"tenants/{tenant_short_id(ids['beta'])}/broker.pem" in listener.split("\n\n")[0]
    assert "tls_version tlsv1.2" in listener.split("\n\n")[0]
    assert main(args) == 0                       # rerun: the choice is kept
    assert "for tenant beta" in capsys.readouterr().err


def test_clientid_plugin_option_chooses_how_certificate_listeners_bind_the_client_id(tmp_path, capsys):
    """--clientid-plugin PATH loads the plugin on every certificate listener (and not on the password listener,
    which keeps dynamic security alone); --no-clientid-plugin writes the override fallback with a warning; a
    path that does not exist is refused."""
    from tests.mqtt_verifier.conftest import require_clientid_plugin
    plugin = require_clientid_plugin()
    db, kek = str(tmp_path / "j.db"), tmp_path / "kek"
    kek.write_text("11" * 32)
    st = SQLiteStorage(db)
    for name in ("acme", "beta"):
        registry.create_tenant(st, name, 1_800_000_000)
    st.close()
    base = free_ports(3)[0]
    args = ["mqtt", "config", "--db", db, "--kek-file", str(kek), "--out", str(tmp_path / "b"),
            "--base-port", str(base)]
    assert main(args + ["--clientid-plugin", str(plugin)]) == 0
    capsys.readouterr()
    blocks = (tmp_path / "b" / "mosquitto.conf").read_text().split("\n\n")
    tls = [b for b in blocks if "require_certificate true" in b]
    password = [b for b in blocks if f"listener {base} " in b]
    assert len(tls) == 2 and all(f"plugin {plugin}\n" in b + "\n" for b in tls)
    assert not any("use_username_as_clientid" in b or "use_identity_as_username" in b for b in tls)
    assert "janua_clientid" not in password[0] and "mosquitto_dynamic_security.so" in password[0]
    with Mosquitto(tmp_path / "mq", conf=tmp_path / "b") as mq:   # both plugins load side by side
        assert len(mq.ports) == 3
    assert main(args + ["--no-clientid-plugin"]) == 0
    assert "warning: no janua_clientid plugin" in capsys.readouterr().err
    conf = (tmp_path / "b" / "mosquitto.conf").read_text()
    assert "janua_clientid.so" not in conf and conf.count("use_username_as_clientid true") == 2
    assert main(args + ["--clientid-plugin", str(tmp_path / "missing.so")]) == 1
    assert "no mosquitto plugin" in capsys.readouterr().err
