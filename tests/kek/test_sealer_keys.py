"""The Sealer with older KEKs (verifier/keys.py) and where they come from (verifier/config.py,
janua serve --old-kek-file): seal under the current key, open under the current or any old one."""

import pytest

from verifier import keys
from verifier.config import Config, load_old_keks, make_sealer
from verifier.errors import ConfigError, CryptoError

A, B, C = bytes(32), bytes(range(32)), bytes(range(100, 132))
DID = bytes.fromhex("0102030405060708")


def test_seals_under_the_current_key_and_opens_under_old_ones():
    sealed_a = keys.Sealer(A).seal(b"secret", DID, "t1")
    both = keys.Sealer(B, [C, A])
    assert both.unseal(sealed_a, DID, "t1") == b"secret"
    sealed_b = both.seal(b"again", DID, "t1")
    assert keys.Sealer(B).unseal(sealed_b, DID, "t1") == b"again"
    with pytest.raises(CryptoError):
        keys.Sealer(A).unseal(sealed_b, DID, "t1")       # a seal never uses an old key


def test_none_opening_is_the_same_error_as_with_one_key():
    sealed = keys.Sealer(A).seal(b"secret", DID, "t1")
    with pytest.raises(CryptoError, match="does not open under this KEK"):
        keys.Sealer(B, [C]).unseal(sealed, DID, "t1")
    with pytest.raises(CryptoError, match="does not open under this KEK"):
        keys.Sealer(A, [B]).unseal(sealed, DID, "t2")     # the AAD still binds it to its row


def test_an_old_key_of_the_wrong_length_is_refused():
    with pytest.raises(CryptoError):
        keys.Sealer(A, [b"short"])


def test_old_keks_from_env_and_files(tmp_path, monkeypatch):
    f = tmp_path / "old.kek"
    f.write_text(C.hex() + "\n")
    monkeypatch.setenv("JANUA_KEK_OLD", f"{A.hex()}, {B.hex()}")
    cfg = Config(db_path=str(tmp_path / "j.db"), kek=B, old_kek_files=(str(f),))
    assert load_old_keks(cfg) == [A, B, C]
    sealer = make_sealer(cfg)
    for k in (A, C):
        assert sealer.unseal(keys.Sealer(k).seal(b"x", DID, "t"), DID, "t") == b"x"
    monkeypatch.setenv("JANUA_KEK_OLD", "00ff")
    with pytest.raises(ConfigError, match="JANUA_KEK_OLD"):
        load_old_keks(cfg)


def test_serve_takes_repeatable_old_kek_files():
    from tools.cli import build_parser
    from verifier.serve import _config
    args = build_parser().parse_args(["serve", "--kek-file", "new.kek", "--old-kek-file", "a.kek",
                                      "--old-kek-file", "b.kek"])
    assert _config(args).old_kek_files == ("a.kek", "b.kek")


def test_old_kek_files_from_the_config_file(tmp_path):
    from tools.cli import build_parser
    from verifier.serve import _config, apply_config_file
    f = tmp_path / "janua.toml"
    f.write_text('kek_file = "new.kek"\nold_kek_file = ["a.kek"]\n')
    args = build_parser().parse_args(["serve", "--config", str(f)])
    apply_config_file(args, ["serve", "--config", str(f)])
    assert _config(args).old_kek_files == ("a.kek",)
    assert _config(build_parser().parse_args(["serve"])).old_kek_files == ()


def test_a_raw_kek_with_whitespace_bytes_at_its_ends_is_taken_as_it_is(tmp_path):
    from verifier.config import load_kek, read_kek_file
    raw = b"\n" + bytes(range(1, 31)) + b" "
    assert load_kek(Config(kek=raw)) == raw
    f = tmp_path / "raw.kek"
    f.write_bytes(raw)
    assert read_kek_file(f) == raw
    assert load_old_keks(Config(old_keks=(raw,))) == [raw]
