"""Key rotation steps (node/key_rotation.py): prepare, registry approval, activate."""

from __future__ import annotations

from pathlib import Path

import pytest

from permitnet.node.config import NodeConfig
from permitnet.node.errors import KeystoreError
from permitnet.node.key_rotation import (
    REQUEST_FILE,
    RotationError,
    activate_rotation,
    next_key_path,
    prepare_rotation,
)
from permitnet.node.keystore import SigningKey, generate_seed, load_key, save_key
from permitnet.protocol.cose import key_id
from permitnet.protocol.registry_records import KeyRecord
from permitnet.protocol.registry_requests import verify_key_request
from permitnet.protocol.registry_view import RegistryState, RegistryView

NOW = 1_790_000_000


def _node(tmp_path: Path, *, encrypted: bool) -> tuple[NodeConfig, SigningKey]:
    config = NodeConfig(
        data_dir=tmp_path,
        country="DE",
        authority_name="Bundesopiumstelle",
        registry_urls=("http://127.0.0.1:9",),
        registry_root=Path("root.cbor"),
        public_url="http://127.0.0.1:9",
        insecure_plaintext_key=not encrypted,
        passphrase_env="PERMITNET_TEST_ROTATION_PASSPHRASE",
    )
    key = SigningKey.from_seed(generate_seed())
    save_key(
        config.key_path,
        key,
        passphrase="correct horse" if encrypted else None,
        insecure_plaintext=not encrypted,
        cost="interactive",
    )
    return config, key


def _record(key: SigningKey | bytes, *, country: str = "DE", **changes: object) -> KeyRecord:
    public = key.public_key if isinstance(key, SigningKey) else key
    fields: dict[str, object] = {
        "country": country,
        "kid": key_id(public),
        "public_key": public,
        "valid_from": NOW - 10,
        "valid_until": None,
        "status": "active",
    }
    fields.update(changes)
    return KeyRecord(**fields)  # type: ignore[arg-type]


def _view(*records: KeyRecord, version: int = 5) -> RegistryView:
    state = RegistryState()
    for record in records:
        state.keys[record.kid] = record
    return RegistryView(
        version=version,
        issued_at=NOW - 60,
        expires_at=NOW + 3600,
        root_version=1,
        log_size=len(records),
        log_root=b"\0" * 32,
        log_compact=(),
        state=state,
    )


@pytest.mark.parametrize("encrypted", [False, True])
def test_full_rotation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encrypted: bool) -> None:
    monkeypatch.setenv("PERMITNET_TEST_ROTATION_PASSPHRASE", "correct horse")
    config, old = _node(tmp_path, encrypted=encrypted)
    prepared = prepare_rotation(config, now=NOW, cost="interactive")
    assert prepared.current_kid == old.kid
    assert prepared.next_key_path == next_key_path(config)
    # The request verifies against the registry's current keys and names the new key.
    request = verify_key_request(prepared.request_path.read_bytes(), {old.kid: _record(old)})
    assert request.action == "rotate"
    assert request.public_key is not None
    new_record = _record(request.public_key)
    assert new_record.kid == prepared.new_kid

    # Before the registry lists the new key, activation is refused and nothing moves.
    with pytest.raises(RotationError, match="does not list key"):
        activate_rotation(config, _view(_record(old)), now=NOW)
    assert load_key(config.key_path, passphrase="correct horse").kid == old.kid

    retired_old = _record(old, status="retired", valid_until=NOW + 86400)
    done = activate_rotation(config, _view(retired_old, new_record, version=6), now=NOW)
    assert (done.old_kid, done.new_kid) == (old.kid, prepared.new_kid)
    assert load_key(config.key_path, passphrase="correct horse").kid == prepared.new_kid
    assert load_key(done.retired_path, passphrase="correct horse").kid == old.kid
    assert not next_key_path(config).exists()
    assert not (tmp_path / REQUEST_FILE).exists()


def test_activation_refusals(tmp_path: Path) -> None:
    config, old = _node(tmp_path, encrypted=False)
    with pytest.raises(RotationError, match="no prepared key"):
        activate_rotation(config, _view(_record(old)), now=NOW)
    prepared = prepare_rotation(config, now=NOW)
    with pytest.raises(RotationError, match="already waiting"):
        prepare_rotation(config, now=NOW)
    new_public = load_key(prepared.next_key_path, passphrase=None).public_key
    cases = [
        ("listed for FR", _record(new_public, country="FR"), "lists key .* for FR"),
        (
            "revoked",
            _record(new_public, status="revoked", compromised_at=NOW - 1, reason="lost"),
            "as revoked",
        ),
        ("not yet valid", _record(new_public, valid_from=NOW + 100), "becomes valid only"),
    ]
    for name, record, message in cases:
        with pytest.raises(RotationError, match=message):
            activate_rotation(config, _view(_record(old), record), now=NOW)
        assert load_key(config.key_path, passphrase=None).kid == old.kid, name
        assert next_key_path(config).exists(), name


def test_encrypted_key_needs_the_passphrase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, _old = _node(tmp_path, encrypted=True)
    monkeypatch.delenv("PERMITNET_TEST_ROTATION_PASSPHRASE", raising=False)
    with pytest.raises(KeystoreError, match="set PERMITNET_TEST_ROTATION_PASSPHRASE"):
        prepare_rotation(config, now=NOW)
    with pytest.raises(KeystoreError):
        prepare_rotation(config, now=NOW, passphrase="wrong", cost="interactive")
    assert not next_key_path(config).exists()
