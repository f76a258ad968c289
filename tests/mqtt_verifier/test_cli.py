"""`janua mqtt config` / `janua mqtt ca` on a registry file, and the written directory in a real mosquitto."""

from cryptography import x509

from tests.mosquitto import Mosquitto, free_ports
from tools.cli import main
from verifier import registry
from verifier.storage import SQLiteStorage


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
    assert "require_certificate true" in conf and "use_identity_as_username true" in conf and "crlfile" in conf
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
    from verifier.mqtt_broker import tenant_short_id
    conf = (tmp_path / "b" / "mosquitto.conf").read_text()
    listener = conf[conf.index(f"listener {base} "):]
    assert f"tenants/{tenant_short_id(ids['beta'])}/broker.pem" in listener.split("\n\n")[0]
    assert "tls_version tlsv1.2" in listener.split("\n\n")[0]
    assert main(args) == 0                       # rerun: the choice is kept
    assert "for tenant beta" in capsys.readouterr().err
