"""`janua claim image` (tools/claim_image.py): the bulk form (one 0600 file per serial, never overwriting,
checked before anything is written) and the one-board form on a virtual board over mpremote (refuses a
board with an identity or a claim unless --force). K_c is the vector's (docs/vectors/claim.json "typical"),
pasted as hex."""

import importlib
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tools.cli import build_parser
from tools.errors import CLIError

BATCH = "c1a1b2b3d4e5f607"
SECRET = "5a" * 32
SERIAL = "SN-2026-000042"
K_C = "c695e53b9f06f5b1fcf246f4d0b808b90dfe01c4a088c1ca5230005109cc543c"


def janua_claim_image(*argv):
    """Run `janua claim image ARGV` through the CLI's own parser and dispatch (tools/cli.py, tools/claim.py);
    a refusal raises the CLIError that `janua` prints."""
    args = build_parser().parse_args(["claim", "image", *argv])
    return importlib.import_module(args._module).run(args)


@pytest.fixture
def secret_file(tmp_path):
    f = tmp_path / "batch.secret"
    f.write_text(SECRET + "\n")
    return f


def test_bulk_writes_one_0600_image_per_serial(tmp_path, secret_file, capsys):
    serials = tmp_path / "serials.txt"
    serials.write_text("# line 1\nSN-2026-000042\n\nSN-2026-000043\nA/B\n")
    out = tmp_path / "images"
    assert janua_claim_image("--batch", BATCH, "--batch-secret-file", str(secret_file), "--serials", str(serials),
                             "--out", str(out), "--server", "http://10.0.0.5:8080", "--wifi-ssid", "factory",
                             "--no-progress") == 0
    assert sorted(p.name for p in out.iterdir()) == ["A%2FB.janua.json", "SN-2026-000042.janua.json",
                                                     "SN-2026-000043.janua.json"]
    for p in out.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    img = json.loads((out / "SN-2026-000042.janua.json").read_text())
    assert img == {"claim": {"batch": BATCH, "serial": SERIAL, "key": K_C},
                   "server": {"host": "10.0.0.5", "http_port": 8080},
                   "wifi": {"ssid": "factory", "password": ""}}
    assert json.loads((out / "A%2FB.janua.json").read_text())["claim"]["serial"] == "A/B"
    text = capsys.readouterr()
    assert "3 claim images" in text.out and K_C not in text.out + text.err and SECRET not in text.out + text.err


def test_bulk_never_overwrites_and_writes_nothing_then(tmp_path, secret_file):
    serials = tmp_path / "serials.txt"
    serials.write_text("S-1\nS-2\n")
    out = tmp_path / "images"
    out.mkdir()
    (out / "S-2.janua.json").write_text("earlier")
    with pytest.raises(CLIError) as e:
        janua_claim_image("--batch", BATCH, "--batch-secret-file", str(secret_file), "--serials", str(serials),
                          "--out", str(out), "--no-progress")
    assert "1 of the 2 images already exist" in str(e.value)
    assert sorted(p.name for p in out.iterdir()) == ["S-2.janua.json"]
    assert (out / "S-2.janua.json").read_text() == "earlier"


@pytest.mark.parametrize("lines,msg", [
    ("S-1\nS-1\n", "serial 'S-1' is listed twice"),
    ("S 1\n", "must be 1..64 printable ASCII characters"),
    ("S" * 65 + "\n", "must be 1..64 printable ASCII characters"),
    ("# nothing\n\n", "lists no serial"),
])
def test_bulk_refuses_a_bad_serials_file_before_writing(tmp_path, secret_file, lines, msg):
    serials = tmp_path / "serials.txt"
    serials.write_text(lines)
    out = tmp_path / "images"
    with pytest.raises(CLIError) as e:
        janua_claim_image("--batch", BATCH, "--batch-secret-file", str(secret_file), "--serials", str(serials),
                          "--out", str(out), "--no-progress")
    assert msg in str(e.value)
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.parametrize("content,ok", [
    (SECRET, True), (json.dumps({"batch_id": BATCH, "batch_secret": SECRET}), True),
    (json.dumps({"batch_secret": SECRET}), True), (SECRET[:62], False), ("zz" * 32, False), ("", False)])
def test_batch_secret_file_forms(tmp_path, content, ok):
    f = tmp_path / "s"
    f.write_text(content)
    serials = tmp_path / "serials.txt"
    serials.write_text(SERIAL + "\n")
    argv = ("--batch", BATCH, "--batch-secret-file", str(f), "--serials", str(serials), "--out",
            str(tmp_path / "o"), "--no-progress")
    if ok:
        assert janua_claim_image(*argv) == 0
        assert json.loads((tmp_path / "o" / (SERIAL + ".janua.json")).read_text())["claim"]["key"] == K_C
    else:
        with pytest.raises(CLIError) as e:
            janua_claim_image(*argv)
        assert "does not hold a batch secret" in str(e.value) and (not content or content not in str(e.value))


@pytest.mark.parametrize("argv,msg", [
    (("--serial", SERIAL), "give either --serial S --port P"),
    (("--serial", SERIAL, "--port", "x", "--out", "d"), "give either"),
    (("--serials", "f"), "give either"),
])
def test_one_form_or_the_other(secret_file, argv, msg):
    with pytest.raises(CLIError) as e:
        janua_claim_image("--batch", BATCH, "--batch-secret-file", str(secret_file), *argv)
    assert msg in str(e.value)


def test_bad_batch_and_https_server_without_ca_refused(tmp_path, secret_file):
    serials = tmp_path / "serials.txt"
    serials.write_text("S\n")
    base = ("--batch-secret-file", str(secret_file), "--serials", str(serials), "--out", str(tmp_path / "o"))
    with pytest.raises(CLIError, match="--batch must be 16 hex"):
        janua_claim_image("--batch", "xyz", *base)
    with pytest.raises(CLIError, match="an https:// --server needs --ca-file"):
        janua_claim_image("--batch", BATCH, *base, "--server", "https://v.example")
    with pytest.raises(CLIError, match="--server must be an http:// or https:// URL"):
        janua_claim_image("--batch", BATCH, *base, "--server", "ftp://v.example")
    assert not (tmp_path / "o").exists()


@pytest.mark.e2e
def test_one_board_form_on_a_virtual_board(tmp_path, secret_file, capsys):
    from tools.vboard import VirtualBoard
    with VirtualBoard("esp32", tmp_path / "flash") as vb:
        flash = vb.root                      # the board's LittleFS
        argv = ("--batch", BATCH, "--batch-secret-file", str(secret_file), "--serial", SERIAL, "--port", vb.port,
                "--server", "http://127.0.0.1:8080")
        assert janua_claim_image(*argv) == 0
        img = json.loads((flash / "janua.json").read_text())
        assert img == {"claim": {"batch": BATCH, "serial": SERIAL, "key": K_C},
                       "server": {"host": "127.0.0.1", "http_port": 8080}}
        assert not (flash / "janua.json.tmp").exists()
        # a board that holds a claim image, then one that holds an identity, is refused without --force
        with pytest.raises(CLIError, match="already holds a claim image"):
            janua_claim_image(*argv)
        (flash / "janua.json").write_text(json.dumps({"device_id": "3f9a0c1b7d2e4a65", "master_secret": "00" * 32,
                                                      "server": {"host": "h"}}))
        with pytest.raises(CLIError, match="already holds device 3f9a0c1b7d2e4a65"):
            janua_claim_image(*argv)
        assert janua_claim_image(*argv, "--force") == 0
        assert json.loads((flash / "janua.json").read_text())["claim"]["key"] == K_C
    text = capsys.readouterr()
    assert K_C not in text.out + text.err and SECRET not in text.out + text.err


def test_secret_file_of_another_batch_is_refused(tmp_path):
    f = tmp_path / "s"
    f.write_text(json.dumps({"batch_id": "00" * 8, "batch_secret": SECRET}))
    serials = tmp_path / "serials.txt"
    serials.write_text("S\n")
    with pytest.raises(CLIError, match="holds the secret of batch 0000000000000000, not of " + BATCH):
        janua_claim_image("--batch", BATCH, "--batch-secret-file", str(f), "--serials", str(serials), "--out",
                          str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()


def test_janua_claim_image_as_a_user_types_it(tmp_path, secret_file):
    root = Path(__file__).resolve().parents[2]
    serials = tmp_path / "serials.txt"
    serials.write_text("SN-1\n")
    argv = [sys.executable, "-m", "tools", "claim", "image", "--batch", BATCH, "--batch-secret-file", str(secret_file),
            "--serials", str(serials), "--out", str(tmp_path / "o"), "--no-progress"]
    r = subprocess.run(argv, capture_output=True, text=True, cwd=root, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("janua: 1 claim image (batch c1a1b2b3d4e5f607, mode 0600)")
    r = subprocess.run(argv, capture_output=True, text=True, cwd=root, timeout=60)   # again: refused
    assert r.returncode == 1
    assert r.stderr.startswith("janua: 1 of the 1 images already exist in ")


def test_coap_endpoint_is_written_into_the_claim(tmp_path, secret_file):
    serials = tmp_path / "serials.txt"
    serials.write_text(SERIAL + "\n")
    out = tmp_path / "images"
    assert janua_claim_image("--batch", BATCH, "--batch-secret-file", str(secret_file), "--serials", str(serials),
                             "--out", str(out), "--server", "http://10.0.0.5:8080", "--coap", "10.0.0.5:5683",
                             "--no-progress") == 0
    assert json.loads((out / f"{SERIAL}.janua.json").read_text()) == {
        "claim": {"batch": BATCH, "serial": SERIAL, "key": K_C, "coap": {"host": "10.0.0.5", "port": 5683}},
        "server": {"host": "10.0.0.5", "http_port": 8080}}


@pytest.mark.parametrize("value, host", [("[2001:db8::1]:5683", "2001:db8::1"), ("claims.example:61616", "claims.example")])
def test_coap_endpoint_forms(value, host):
    from tools.claim_image import coap_endpoint
    assert coap_endpoint(value) == {"host": host, "port": int(value.rsplit(":", 1)[1])}


@pytest.mark.parametrize("value", ["10.0.0.5", "10.0.0.5:", ":5683", "10.0.0.5:0", "10.0.0.5:65536", "h:x1",
                                   "a b:5683", "coap://h:5683"])
def test_bad_coap_endpoint_refused_before_writing(tmp_path, secret_file, value):
    serials = tmp_path / "serials.txt"
    serials.write_text(SERIAL + "\n")
    with pytest.raises(CLIError) as e:
        janua_claim_image("--batch", BATCH, "--batch-secret-file", str(secret_file), "--serials", str(serials),
                          "--out", str(tmp_path / "images"), "--coap", value, "--no-progress")
    assert "--coap must be HOST:PORT" in str(e.value)
    assert not (tmp_path / "images").exists()


def _ca_der(tmp_path):
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "claim test CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    pem = tmp_path / "ca.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return pem, cert.public_bytes(serialization.Encoding.DER)


def test_https_server_writes_tls_and_the_ca_beside_the_images(tmp_path, secret_file):
    pem, der = _ca_der(tmp_path)
    serials = tmp_path / "serials.txt"
    serials.write_text("S-1\nS-2\n")
    out = tmp_path / "images"
    assert janua_claim_image("--batch", BATCH, "--batch-secret-file", str(secret_file), "--serials", str(serials),
                             "--out", str(out), "--server", "https://v.example", "--ca-file", str(pem),
                             "--no-progress") == 0
    assert sorted(p.name for p in out.iterdir()) == ["S-1.janua.json", "S-2.janua.json", "janua_server_ca.der"]
    assert (out / "janua_server_ca.der").read_bytes() == der
    assert json.loads((out / "S-1.janua.json").read_text())["server"] == {"host": "v.example", "http_port": 443,
                                                                          "tls": True}
    # a second run into the same directory with another CA is refused before anything is written
    serials.write_text("S-3\n")
    other, _ = _ca_der(tmp_path / "o2") if (tmp_path / "o2").mkdir() is None else None
    with pytest.raises(CLIError, match="holds another CA than --ca-file"):
        janua_claim_image("--batch", BATCH, "--batch-secret-file", str(secret_file), "--serials", str(serials),
                          "--out", str(out), "--server", "https://v.example", "--ca-file", str(other),
                          "--no-progress")
    assert not (out / "S-3.janua.json").exists()
