"""Verifying a received document against the registry: the right key, at the right time.

Both the node (on every received document) and the offline ``permitnet verify`` call
:func:`verify_document`; it is the one place that ties a document to its signer's registry
entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from permitnet.protocol.registry_errors import KeyNotValidError, UnknownKeyError
from permitnet.protocol.signed import SignedDocument, parse_document

if TYPE_CHECKING:
    from permitnet.protocol.catalogue import Catalogue
    from permitnet.protocol.cose import Ed25519Check, Sign1Message
    from permitnet.protocol.registry_view import RegistryView

__all__ = ["MAX_CLOCK_SKEW", "UncheckedDocument", "prepare_document", "verify_document"]

#: How far in the future a document's issue time may be (clocks of two ministries differ).
MAX_CLOCK_SKEW: Final = 300


def verify_document(
    raw: bytes, view: RegistryView, *, now: int, catalogue: Catalogue | None = None
) -> SignedDocument:
    """Verify a signed document against the registry and return it.

    The kid is read from the protected header only to find the registered key; the
    signature is then verified with that key, and only then is the document's issuer and
    issue time trusted to check that the key was this country's and valid when it signed.

    Args:
        raw: the COSE_Sign1 bytes as received.
        view: the verified registry view.
        now: the current time (Unix seconds).
        catalogue: the substance catalogue (default: the built-in edition).

    Raises:
        UnknownKeyError: the registry does not list the signing key.
        SignatureError: malformed message or a signature that does not verify (a subclass).
        DocumentError: the payload is not a valid document.
        WrongCountryError: the key belongs to another country than the issuer.
        KeyNotValidError: the key was not valid when the document says it was issued, or
            the issue time is in the future.
        KeyRevokedError: the key was revoked as compromised at or before the issue time.
    """
    unchecked = prepare_document(raw, view)
    return unchecked.finish(holds=unchecked.check.holds(), view=view, now=now, catalogue=catalogue)


@dataclass(frozen=True, slots=True)
class UncheckedDocument:
    """A document parsed and matched to its registered key, its signature not yet checked.

    :func:`verify_document` is :func:`prepare_document`, ``check.holds()`` and :meth:`finish`;
    a caller that runs the Ed25519 checks of many documents elsewhere (the node: in a worker
    process, in batches) takes the three steps itself. Nothing in it may be trusted before
    :meth:`finish` returns.
    """

    message: Sign1Message
    #: The Ed25519 verification to run, with the key the registry lists for the kid.
    check: Ed25519Check

    def finish(
        self, *, holds: bool, view: RegistryView, now: int, catalogue: Catalogue | None = None
    ) -> SignedDocument:
        """Return the verified document, given whether :attr:`check` held.

        Raises:
            The errors of :func:`verify_document` after the key lookup.
        """
        signed = SignedDocument.from_checked(
            self.message, self.check, holds=holds, catalogue=catalogue
        )
        document = signed.document
        if document.issued_at > now + MAX_CLOCK_SKEW:
            raise KeyNotValidError(
                f"document issued at {document.issued_at}, more than {MAX_CLOCK_SKEW} s after "
                f"now ({now})"
            )
        view.check_signer(signed.kid, document.issuer, document.issued_at)
        return signed


def prepare_document(raw: bytes, view: RegistryView) -> UncheckedDocument:
    """Parse a signed document and find its registered key: the first step of verifying it.

    Raises:
        UnknownKeyError: the registry does not list the signing key.
        DecodeError, SignatureError: the bytes are not a permitnet signed document.
    """
    # Parsed once: the kid is read from it, then the same message is verified.
    message = parse_document(raw)
    kid = message.kid
    assert kid is not None  # parse_document refuses a message without a protected kid
    key = view.key(kid)
    if key is None:
        raise UnknownKeyError(
            f"document signed by key {kid.hex()}, which registry snapshot {view.version} "
            "does not list"
        )
    return UncheckedDocument(message=message, check=message.signature_check(key.public_key))
