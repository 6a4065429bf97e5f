"""The protocol's exceptions: one root, local versus remote, each with a status hint.

Every failure that crosses the protocol boundary is a :class:`ProtocolError`. Library
errors (cbor2, PyNaCl) are wrapped with ``raise ... from e`` so that callers never see a
raw ``ValueError`` from a dependency.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Root of every permitnet protocol exception."""

    #: The HTTP status a server should answer with when this error is the peer's fault.
    status_hint: int = 400


class DecodeError(ProtocolError):
    """Bytes that are not strict, deterministic permitnet CBOR."""


class EncodeError(ProtocolError):
    """A value that cannot be encoded as permitnet CBOR (a float, a set, an unknown type)."""

    status_hint = 500


class SizeLimitError(DecodeError):
    """Input larger or deeper than the protocol allows."""

    status_hint = 413


class SignatureError(ProtocolError):
    """A COSE_Sign1 message that is malformed, uses a refused header, or fails verification."""


class InvalidSignatureError(SignatureError):
    """The signature does not verify with the given public key."""


class DocumentError(ProtocolError):
    """A payload that does not match the schema of its document type."""


class RuleViolation(ProtocolError):  # noqa: N818 - the Conventions speak of violations
    """A document that breaks a Convention business rule; the message names the rule and numbers."""

    status_hint = 422

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"{rule}: {message}")
        self.rule = rule


class RegistryError(ProtocolError):
    """A registry snapshot, root or proof that must not be trusted."""
