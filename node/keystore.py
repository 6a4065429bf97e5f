"""The node's Ed25519 signing key at rest: encrypted with a passphrase, or (demos only) plain.

The encrypted file holds the 32-byte seed sealed with a PyNaCl ``SecretBox`` (XSalsa20-Poly1305)
under a key derived from the passphrase with Argon2id (``nacl.pwhash.argon2id``). The file also
records the public key and kid; after decryption the derived public key must match them, so a
file whose public part was swapped is refused as well as one whose ciphertext was changed.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from permitnet.node.errors import KeystoreError
from permitnet.protocol import ProtocolError, key_id, public_key_from_seed

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "KdfCost",
    "SigningKey",
    "generate_seed",
    "is_plaintext",
    "load_key",
    "save_key",
]

_FORMAT: Final = "permitnet-signing-key-1"
_SEED_SIZE: Final = 32
KdfCost = Literal["moderate", "interactive"]
_COSTS: Final[dict[str, tuple[int, int]]] = {
    # Argon2id "moderate" (256 MiB, ~1 s) protects a file an attacker may copy; "interactive"
    # (64 MiB) exists for tests and very small machines.
    "moderate": (nacl.pwhash.argon2id.OPSLIMIT_MODERATE, nacl.pwhash.argon2id.MEMLIMIT_MODERATE),
    "interactive": (
        nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE,
        nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE,
    ),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class SigningKey:
    """The node's signing key, decrypted in memory.

    Attributes:
        seed: the 32-byte Ed25519 seed (secret).
        public_key: the 32-byte public key.
        kid: the key identifier (first 16 bytes of SHA-256 of the public key).
    """

    seed: bytes = field(repr=False)
    public_key: bytes
    kid: bytes

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """Derive the public key and kid from a seed.

        Raises:
            KeystoreError: the seed is not 32 bytes.
        """
        try:
            public = public_key_from_seed(seed)
        except ProtocolError as e:
            raise KeystoreError(f"invalid signing key: {e}") from e
        return cls(seed=seed, public_key=public, kid=key_id(public))


def generate_seed() -> bytes:
    """Return a fresh random 32-byte Ed25519 seed."""
    return nacl.utils.random(_SEED_SIZE)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise KeystoreError(f"key file: {what} must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as e:
        raise KeystoreError(f"key file: {what} is not valid base64") from e


def _derive(passphrase: str, salt: bytes, ops: int, mem: int) -> bytes:
    try:
        return nacl.pwhash.argon2id.kdf(
            nacl.secret.SecretBox.KEY_SIZE, passphrase.encode("utf-8"), salt, ops, mem
        )
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as e:
        raise KeystoreError(f"key file: bad key-derivation parameters: {e}") from e


def save_key(
    path: Path,
    key: SigningKey,
    *,
    passphrase: str | None,
    insecure_plaintext: bool = False,
    cost: KdfCost = "moderate",
) -> None:
    """Write the key file, readable by its owner only.

    Args:
        path: where to write; an existing file is never overwritten.
        key: the key to store.
        passphrase: the passphrase (required unless ``insecure_plaintext``).
        insecure_plaintext: store the seed unencrypted (demos only).
        cost: the Argon2id cost.

    Raises:
        KeystoreError: no passphrase, an empty one, or the file exists or cannot be written.
    """
    record: dict[str, Any] = {
        "format": _FORMAT,
        "public_key": key.public_key.hex(),
        "kid": key.kid.hex(),
    }
    if insecure_plaintext:
        record |= {"protection": "insecure-plaintext", "seed": _b64(key.seed)}
    else:
        if not passphrase:
            raise KeystoreError("a non-empty passphrase is required to encrypt the signing key")
        ops, mem = _COSTS[cost]
        salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
        box = nacl.secret.SecretBox(_derive(passphrase, salt, ops, mem))
        record |= {
            "protection": "argon2id-xsalsa20poly1305",
            "opslimit": ops,
            "memlimit": mem,
            "salt": _b64(salt),
            "sealed": _b64(bytes(box.encrypt(key.seed))),
        }
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as e:
        raise KeystoreError(f"{path} already exists: refusing to overwrite a signing key") from e
    except OSError as e:
        raise KeystoreError(f"cannot create {path}: {e}") from e
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def load_key(path: Path, *, passphrase: str | None) -> SigningKey:
    """Read and, if encrypted, decrypt the key file.

    Raises:
        KeystoreError: the file is missing or malformed, the passphrase is wrong, or the file
            was tampered with.
    """
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise KeystoreError(f"signing key file {path} not found") from e
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise KeystoreError(f"cannot read signing key file {path}: {e}") from e
    if not isinstance(record, dict) or record.get("format") != _FORMAT:
        raise KeystoreError(f"{path} is not a permitnet signing key file")
    protection = record.get("protection")
    if protection == "insecure-plaintext":
        seed = _unb64(record.get("seed"), "seed")
    elif protection == "argon2id-xsalsa20poly1305":
        if not passphrase:
            raise KeystoreError("the signing key is encrypted: a passphrase is required")
        ops, mem = record.get("opslimit"), record.get("memlimit")
        if not isinstance(ops, int) or not isinstance(mem, int):
            raise KeystoreError("key file: opslimit and memlimit must be integers")
        salt = _unb64(record.get("salt"), "salt")
        box = nacl.secret.SecretBox(_derive(passphrase, salt, ops, mem))
        try:
            seed = box.decrypt(_unb64(record.get("sealed"), "sealed"))
        except nacl.exceptions.CryptoError as e:
            raise KeystoreError(
                f"cannot decrypt {path}: wrong passphrase, or the file was altered"
            ) from e
    else:
        raise KeystoreError(f"key file: unknown protection {protection!r}")
    key = SigningKey.from_seed(seed)
    if record.get("public_key") != key.public_key.hex() or record.get("kid") != key.kid.hex():
        raise KeystoreError(f"{path}: the public key recorded does not match the secret key")
    return key


def is_plaintext(path: Path) -> bool:
    """Return whether the key file at ``path`` is stored unencrypted.

    Raises:
        KeystoreError: the file cannot be read.
    """
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise KeystoreError(f"cannot read signing key file {path}: {e}") from e
    return isinstance(record, dict) and record.get("protection") == "insecure-plaintext"
