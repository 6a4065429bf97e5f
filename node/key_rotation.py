"""Rotating a node's signing key: prepare, have the registry enroll it, then activate.

The drill has three steps, so that the node never signs with a key other countries cannot yet
check:

1. :func:`prepare_rotation` generates the new key beside the current one (``*.next.json``,
   protected like the current key) and writes a rotation request signed by the **current** key,
   embedding the new key's own enrollment request (proof of possession of both).
2. The country sends the request to the INCB, which verifies it, approves it and publishes a
   snapshot listing the new key as active. The old key is kept in the registry (retired, not
   revoked), so documents already signed with it keep verifying.
3. :func:`activate_rotation` checks that the registry view lists the new key for this country,
   active and already valid, then moves the current key file aside (``*.retired-<kid>.json``,
   kept for audit) and puts the new key in its place. The node signs with it from its next start.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from permitnet.node.errors import ConflictError, KeystoreError, NodeError
from permitnet.node.keystore import KdfCost, SigningKey, generate_seed, load_key, save_key
from permitnet.protocol.errors import ProtocolError
from permitnet.protocol.registry_requests import build_rotation_request

if TYPE_CHECKING:
    from pathlib import Path

    from permitnet.node.config import NodeConfig
    from permitnet.protocol.registry_view import RegistryView

__all__ = [
    "REQUEST_FILE",
    "ActivatedRotation",
    "PreparedRotation",
    "RotationError",
    "activate_rotation",
    "next_key_path",
    "prepare_rotation",
]

#: The rotation request, written into the node directory for the operator to send.
REQUEST_FILE: Final = "key-rotation-request.cose"


class RotationError(ConflictError):
    """A key rotation step that cannot be done now; the message says what to do first."""

    code = "key_rotation"


@dataclass(frozen=True, slots=True, kw_only=True)
class PreparedRotation:
    """The outcome of step 1.

    Attributes:
        current_kid: the key that signs today (and signed the request).
        new_kid: the new key's identifier, to confirm with the INCB out of band.
        request_path: the rotation request file to send to the INCB.
        next_key_path: where the new key waits until activation.
    """

    current_kid: bytes
    new_kid: bytes
    request_path: Path
    next_key_path: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivatedRotation:
    """The outcome of step 3.

    Attributes:
        old_kid: the key the node signed with until now.
        new_kid: the key it signs with from its next start.
        retired_path: where the old key file was kept.
    """

    old_kid: bytes
    new_kid: bytes
    retired_path: Path


def next_key_path(config: NodeConfig) -> Path:
    """Return where a prepared, not yet active key is kept."""
    path = config.key_path
    return path.with_name(f"{path.stem}.next{path.suffix or '.json'}")


def _passphrase(config: NodeConfig, passphrase: str | None) -> str | None:
    if config.insecure_plaintext_key:
        return None
    value = passphrase if passphrase is not None else os.environ.get(config.passphrase_env)
    if not value:
        raise KeystoreError(f"the signing key is encrypted: set {config.passphrase_env}")
    return value


def prepare_rotation(
    config: NodeConfig,
    *,
    now: int,
    valid_from: int | None = None,
    passphrase: str | None = None,
    cost: KdfCost = "moderate",
) -> PreparedRotation:
    """Generate the next key and the rotation request signed by the current key.

    Args:
        config: the node's configuration.
        now: the current Unix time (the request's time).
        valid_from: from when the new key may sign; ``now`` by default.
        passphrase: the key passphrase; read from ``config.passphrase_env`` when omitted.
        cost: the Argon2id cost for the new key file.

    Raises:
        RotationError: a prepared key is already waiting (activate or discard it first).
        KeystoreError: the current key cannot be opened.
    """
    secret = _passphrase(config, passphrase)
    pending = next_key_path(config)
    if pending.exists():
        raise RotationError(
            f"a prepared key is already waiting in {pending}: activate it, or delete it and "
            f"{config.data_dir / REQUEST_FILE} to start again"
        )
    current = load_key(config.key_path, passphrase=secret)
    new = SigningKey.from_seed(generate_seed())
    try:
        request = build_rotation_request(
            current.seed,
            new.seed,
            country=config.country,
            valid_from=now if valid_from is None else valid_from,
            requested_at=now,
        )
    except ProtocolError as e:
        raise RotationError(f"cannot build the rotation request: {e}") from e
    save_key(
        pending,
        new,
        passphrase=secret,
        insecure_plaintext=config.insecure_plaintext_key,
        cost=cost,
    )
    request_path = config.data_dir / REQUEST_FILE
    try:
        request_path.write_bytes(request)
    except OSError as e:
        pending.unlink()
        raise RotationError(f"cannot write {request_path}: {e}") from e
    return PreparedRotation(
        current_kid=current.kid,
        new_kid=new.kid,
        request_path=request_path,
        next_key_path=pending,
    )


def activate_rotation(
    config: NodeConfig, view: RegistryView, *, now: int, passphrase: str | None = None
) -> ActivatedRotation:
    """Switch the node to the prepared key once the registry lists it.

    Args:
        config: the node's configuration.
        view: a verified, current registry view.
        now: the current Unix time.
        passphrase: the key passphrase; read from ``config.passphrase_env`` when omitted.

    Raises:
        RotationError: no key is prepared, or the registry does not (yet) list it as this
            country's active key valid now.
        KeystoreError: a key file cannot be opened.
    """
    secret = _passphrase(config, passphrase)
    pending = next_key_path(config)
    if not pending.exists():
        raise RotationError(f"no prepared key at {pending}: run 'permitnet node rotate-key' first")
    new = load_key(pending, passphrase=secret)
    old = load_key(config.key_path, passphrase=secret)
    record = view.key(new.kid)
    where = f"registry snapshot v{view.version}"
    if record is None:
        raise RotationError(
            f"{where} does not list key {new.kid.hex()} yet: send "
            f"{config.data_dir / REQUEST_FILE} to the INCB and wait for its approval"
        )
    if record.country != config.country:
        raise RotationError(f"{where} lists key {new.kid.hex()} for {record.country}")
    if record.status != "active":
        raise RotationError(f"{where} lists key {new.kid.hex()} as {record.status}, not active")
    if record.valid_from > now:
        raise RotationError(f"key {new.kid.hex()} becomes valid only at {record.valid_from}")
    if record.public_key != new.public_key:
        raise RotationError(f"{where} lists another public key under kid {new.kid.hex()}")
    retired = config.key_path.with_name(
        f"{config.key_path.stem}.retired-{old.kid.hex()[:16]}{config.key_path.suffix or '.json'}"
    )
    if retired.exists():
        raise RotationError(f"{retired} already exists: refusing to overwrite a key file")
    try:
        config.key_path.replace(retired)
    except OSError as e:
        raise NodeError(f"cannot move the current key aside: {e}") from e
    try:
        pending.replace(config.key_path)
    except OSError as e:
        # Put the current key back, so that the node can still start and sign.
        retired.replace(config.key_path)
        raise NodeError(f"cannot put the new key in place: {e}") from e
    with contextlib.suppress(FileNotFoundError):
        (config.data_dir / REQUEST_FILE).unlink()
    return ActivatedRotation(old_kid=old.kid, new_kid=new.kid, retired_path=retired)
