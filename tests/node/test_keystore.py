"""The signing key at rest: encrypted round trip, wrong passphrase, tampered files."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING

import pytest

from permitnet.node.errors import KeystoreError
from permitnet.node.keystore import SigningKey, generate_seed, is_plaintext, load_key, save_key
from permitnet.protocol import key_id, public_key_from_seed

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.from_seed(generate_seed())


def test_encrypted_round_trip(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "k.json"
    save_key(path, key, passphrase="correct horse", cost="interactive")
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text()
    assert base64.b64encode(key.seed).decode() not in text
    assert not is_plaintext(path)
    loaded = load_key(path, passphrase="correct horse")
    assert loaded == key
    assert loaded.public_key == public_key_from_seed(key.seed)
    assert loaded.kid == key_id(loaded.public_key)
    assert "seed" not in repr(loaded)


def test_plaintext_round_trip(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "k.json"
    save_key(path, key, passphrase=None, insecure_plaintext=True)
    assert is_plaintext(path)
    assert load_key(path, passphrase=None) == key


def test_never_overwrites(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "k.json"
    save_key(path, key, passphrase="p", cost="interactive")
    with pytest.raises(KeystoreError, match="refusing to overwrite"):
        save_key(path, key, passphrase="p", cost="interactive")


def test_empty_passphrase_refused(tmp_path: Path, key: SigningKey) -> None:
    with pytest.raises(KeystoreError, match="passphrase is required"):
        save_key(tmp_path / "k.json", key, passphrase="", cost="interactive")


def _flip(b64: str) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[-1] ^= 1
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    ("change", "passphrase", "message"),
    [
        pytest.param(lambda r: None, "wrong", "wrong passphrase", id="wrong-passphrase"),
        pytest.param(lambda r: None, None, "passphrase is required", id="no-passphrase"),
        pytest.param(
            lambda r: r.update(sealed=_flip(r["sealed"])), "pw", "altered", id="tampered-ciphertext"
        ),
        pytest.param(
            lambda r: r.update(salt=_flip(r["salt"])), "pw", "altered", id="tampered-salt"
        ),
        pytest.param(
            lambda r: r.update(public_key="00" * 32),
            "pw",
            "does not match",
            id="swapped-public-key",
        ),
        pytest.param(lambda r: r.update(kid="00" * 16), "pw", "does not match", id="swapped-kid"),
        pytest.param(lambda r: r.update(format="x"), "pw", "not a permitnet", id="wrong-format"),
        pytest.param(
            lambda r: r.update(protection="rot13"), "pw", "unknown protection", id="bad-protection"
        ),
        pytest.param(lambda r: r.update(salt=5), "pw", "base64", id="salt-not-text"),
        pytest.param(lambda r: r.update(sealed="%%%"), "pw", "base64", id="sealed-not-base64"),
        pytest.param(lambda r: r.update(opslimit="1"), "pw", "integers", id="opslimit-text"),
    ],
)
def test_bad_key_files(
    tmp_path: Path, key: SigningKey, change: object, passphrase: str | None, message: str
) -> None:
    path = tmp_path / "k.json"
    save_key(path, key, passphrase="pw", cost="interactive")
    record = json.loads(path.read_text())
    change(record)  # type: ignore[operator]
    path.write_text(json.dumps(record))
    with pytest.raises(KeystoreError, match=message):
        load_key(path, passphrase=passphrase)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(None, "not found", id="missing"),
        pytest.param("not json", "cannot read", id="not-json"),
        pytest.param("[1, 2]", "not a permitnet", id="not-an-object"),
    ],
)
def test_unreadable_files(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "k.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(KeystoreError, match=message):
        load_key(path, passphrase="x")
