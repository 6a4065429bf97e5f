"""Offline verification: is this PDF, scan, QR text or file an authentic permitnet document?

:func:`verify_offline` takes whatever a person has (see :mod:`permitnet.node.offline_inputs`),
verifies the signed document in it against a registry view with the same
:func:`~permitnet.protocol.registry_verify.verify_document` every node uses on receipt, and
returns a :class:`Verdict`: authentic or not, and why; who issued it, with which key and that
key's status; whether it is in force; what it refers to; which registry snapshot was used.

A PDF is also checked as a whole (:mod:`permitnet.node.printout_check`): its printed text must
be the text that printing its signed document gives. A printout whose words were changed after
printing (a quantity, a name) is refused even though its attachment is authentic, because a
person reads the words.

The verdict is a report, not a permission: the web verify page and ``permitnet verify`` show
it. Nodes never accept documents through this path.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from permitnet.node.offline_inputs import IMAGE_SOURCE, UnreadableInputError, extract_signed
from permitnet.node.print_content import country_name, format_instant, reference
from permitnet.node.printing import PRINTABLE_TYPES, document_sections, document_title
from permitnet.node.printout_check import compare_printout
from permitnet.protocol.catalogue import DEFAULT_CATALOGUE
from permitnet.protocol.documents import (
    Cancellation,
    Endorsement,
    ExportAuthorization,
    ImportCertificate,
    Message,
)
from permitnet.protocol.errors import (
    DecodeError,
    DocumentError,
    InvalidSignatureError,
    ProtocolError,
    SignatureError,
)
from permitnet.protocol.registry_errors import (
    KeyNotValidError,
    KeyRevokedError,
    UnknownKeyError,
)
from permitnet.protocol.registry_verify import verify_document
from permitnet.protocol.signed import peek_kid

if TYPE_CHECKING:
    from permitnet.node.print_layout import Section
    from permitnet.protocol.catalogue import Catalogue
    from permitnet.protocol.registry_records import KeyRecord
    from permitnet.protocol.registry_view import RegistryView
    from permitnet.protocol.signed import SignedDocument

__all__ = ["ChainLink", "Verdict", "verify_offline"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainLink:
    """A document the verified one refers to: its identifier, as signed, and how it relates."""

    relation: str
    document_id: str
    number: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """The outcome of verifying one input offline.

    Attributes:
        authentic: True only if the signature verifies with the key the registry lists for
            the issuing country, valid and not compromised when the document was signed,
            and (for a PDF) the printed text is that of the signed document.
        reason: why it is not authentic (None when it is).
        source: where the signed document was found (attachment, QR code, file ...).
        document_id: SHA-256 of the signed bytes, in hex (None if none were found).
        title: the document's title, e.g. "Import certificate" (authentic documents only).
        issuer: the issuing country code; for a failed document, the country the signing
            key is registered to, if the key is known.
        authority: the issuing competent authority.
        reference: the issuer's reference number.
        issued_at: when it was signed (Unix seconds).
        kid: the signing key identifier in hex (read from the message even when it fails).
        key_status: the key's status in the registry, in words.
        validity: whether the document is in force on the day of verification, in words.
        chain: the documents it refers to.
        registry_version: the registry snapshot version used (None without one).
        registry_expires_at: when that snapshot expires (Unix seconds).
        warnings: things the reader must know even though the document is authentic.
        sections: every field of the authentic document, for display.
        signed: the verified signed document, for callers that show more. Also set when
            only the PDF around an authentic signed document failed (its words or pages were
            altered): the reason says so, and ``authentic`` is False.
        printout: the signed document printed as PDF, when a PDF input was compared with it
            (``permitnet print`` reuses it rather than printing again).
    """

    authentic: bool
    reason: str | None = None
    source: str | None = None
    document_id: str | None = None
    title: str | None = None
    issuer: str | None = None
    authority: str | None = None
    reference: str | None = None
    issued_at: int | None = None
    kid: str | None = None
    key_status: str | None = None
    validity: str | None = None
    chain: tuple[ChainLink, ...] = ()
    registry_version: int | None = None
    registry_expires_at: int | None = None
    warnings: tuple[str, ...] = ()
    sections: tuple[Section, ...] = field(default=(), repr=False)
    signed: SignedDocument | None = field(default=None, repr=False)
    printout: bytes | None = field(default=None, repr=False)

    def summary(self) -> list[str]:
        """Return the verdict as lines of text, the first one saying authentic or not and why."""
        if self.authentic:
            lines = [f"AUTHENTIC: {self.title} {self.reference}"]
        else:
            lines = [f"NOT AUTHENTIC: {self.reason}"]
        facts = (
            ("Found in", self.source),
            ("Document identifier", self.document_id),
            ("Issued by", self._issuer_text()),
            ("Signed at", None if self.issued_at is None else format_instant(self.issued_at)),
            ("Signing key", self.kid and f"{self.kid} ({self.key_status or 'not in registry'})"),
            ("Validity", self.validity),
            ("Registry", self._registry_text()),
        )
        lines.extend(f"  {label}: {value}" for label, value in facts if value)
        lines.extend(
            f"  Refers to: {link.relation} {link.number or ''} ({link.document_id})".replace(
                "  (", " ("
            )
            for link in self.chain
        )
        lines.extend(f"  Warning: {warning}" for warning in self.warnings)
        return lines

    def to_payload(self) -> dict[str, object]:
        """Return the verdict as a JSON-ready map; the document's fields by section heading."""
        return {
            "authentic": self.authentic,
            "reason": self.reason,
            "source": self.source,
            "document_id": self.document_id,
            "title": self.title,
            "issuer": self.issuer,
            "authority": self.authority,
            "reference": self.reference,
            "issued_at": self.issued_at,
            "kid": self.kid,
            "key_status": self.key_status,
            "validity": self.validity,
            "chain": [
                {"relation": c.relation, "document_id": c.document_id, "number": c.number}
                for c in self.chain
            ],
            "registry_version": self.registry_version,
            "registry_expires_at": self.registry_expires_at,
            "warnings": list(self.warnings),
            "fields": {
                section.heading: {field.label: field.value for field in section.fields}
                for section in self.sections
            },
        }

    def _issuer_text(self) -> str | None:
        if self.issuer is None:
            return None
        country = f"{country_name(self.issuer)} ({self.issuer})"
        return f"{self.authority}, {country}" if self.authority else f"key registered to {country}"

    def _registry_text(self) -> str | None:
        if self.registry_version is None:
            return None
        expiry = self.registry_expires_at
        until = "" if expiry is None else f", expires {format_instant(expiry)}"
        return f"snapshot version {self.registry_version}{until}"


def verify_offline(
    data: bytes,
    view: RegistryView | None,
    *,
    now: int,
    catalogue: Catalogue = DEFAULT_CATALOGUE,
) -> Verdict:
    """Verify a PDF, an image of the QR code, a QR text or a signed file against ``view``.

    Never raises for a bad input: every failure is a verdict with its reason. It is CPU work
    (rendering a PDF page and decoding its QR code take tens of milliseconds): from async code,
    run it in a worker thread (``asyncio.to_thread``); PDF rendering is serialized inside.

    Args:
        data: the whole input file.
        view: the verified registry view to check the signer against (None: no registry
            data at all, which is a failure with that reason).
        now: the current time (Unix seconds), for validity and the snapshot's freshness.
        catalogue: the substance catalogue.

    Returns:
        The verdict.
    """
    try:
        found = extract_signed(data)
    except UnreadableInputError as e:
        return Verdict(authentic=False, reason=f"cannot read the input: {e}")
    document_id = hashlib.sha256(found.raw).hexdigest()
    kid = _peek_kid(found.raw)
    if view is None:
        return Verdict(
            authentic=False,
            reason="no registry data to verify against: give a registry snapshot",
            source=found.source,
            document_id=document_id,
            kid=kid,
        )
    key = None if kid is None else view.key(bytes.fromhex(kid))
    try:
        signed = verify_document(found.raw, view, now=now, catalogue=catalogue)
    except ProtocolError as e:
        return Verdict(
            authentic=False,
            reason=_reason(e, key),
            source=found.source,
            document_id=document_id,
            issuer=None if key is None else key.country,
            kid=kid,
            key_status=None if key is None else _key_status(key),
            registry_version=view.version,
            registry_expires_at=view.expires_at,
            warnings=tuple(_registry_warnings(view, now)),
        )
    assert key is not None  # verify_document found it
    warnings = _registry_warnings(view, now)
    warnings.extend(_key_warnings(key))
    if found.source == IMAGE_SOURCE:
        warnings.append(
            "only the QR code was verified, not the text around it: compare the fields shown "
            "here with the paper"
        )
    reason = printout = None
    if data.startswith(b"%PDF-"):
        if signed.document.DOCUMENT_TYPE in PRINTABLE_TYPES:
            reason, printout = compare_printout(
                data, signed, catalogue=catalogue, warnings=warnings
            )
        else:
            # Its pages could say anything: nothing printed them from this document.
            kind = signed.document.DOCUMENT_TYPE.replace("_", " ")
            reason = (
                f"the PDF holds a {kind}, which is never printed: its pages were not printed "
                f"from the signed document inside it (an authentic {kind})"
            )
    document = signed.document
    return Verdict(
        authentic=reason is None,
        reason=reason,
        source=found.source,
        document_id=signed.id_hex,
        title=document_title(signed),
        issuer=document.issuer,
        authority=document.authority,
        reference=reference(signed),
        issued_at=document.issued_at,
        kid=signed.kid.hex(),
        key_status=_key_status(key),
        validity=_validity(signed, now),
        chain=_chain(signed),
        warnings=tuple(warnings),
        sections=document_sections(signed, catalogue=catalogue),
        signed=signed,
        printout=printout,
        registry_version=view.version,
        registry_expires_at=view.expires_at,
    )


def _peek_kid(raw: bytes) -> str | None:
    try:
        return peek_kid(raw).hex()
    except ProtocolError:
        return None


def _registry_warnings(view: RegistryView, now: int) -> list[str]:
    if now < view.expires_at:
        return []
    return [
        (
            f"the registry snapshot (version {view.version}) expired on "
            f"{format_instant(view.expires_at)}: a key revoked since then is not known to it; "
            "refresh the registry data and verify again"
        )
    ]


def _reason(error: ProtocolError, key: KeyRecord | None) -> str:
    if isinstance(error, InvalidSignatureError):
        owner = "" if key is None else f" of {country_name(key.country)} ({key.country})"
        return (
            f"the signature does not verify with the registered key{owner}: the document has "
            "been altered, or was not signed with that key"
        )
    if key is not None and (
        isinstance(error, KeyRevokedError)
        or (isinstance(error, KeyNotValidError) and key.status == "revoked")
    ):
        return (
            f"signed with a revoked key: {_key_status(key)}; nothing it signed from then on "
            "is authentic"
        )
    if isinstance(error, KeyNotValidError) and key is not None:
        until = "" if key.valid_until is None else f" until {format_instant(key.valid_until)}"
        return (
            f"the signing key was not valid when the document was signed: it is valid from "
            f"{format_instant(key.valid_from)}{until} ({error})"
        )
    if isinstance(error, UnknownKeyError):
        return f"signed with a key the registry does not list ({error})"
    if isinstance(error, DocumentError):
        return f"the signed content is not a valid permitnet document: {error}"
    if isinstance(error, DecodeError | SignatureError):
        return f"not a valid signed permitnet document: {error}"
    return str(error)


def _key_status(key: KeyRecord) -> str:
    if key.status == "revoked":
        when = "" if key.compromised_at is None else f" from {format_instant(key.compromised_at)}"
        return f"revoked as compromised{when} ({key.reason})"
    if key.status == "retired" and key.valid_until is not None:
        return f"retired, signed until {format_instant(key.valid_until)}"
    return f"{key.status}, registered to {key.country}"


def _key_warnings(key: KeyRecord) -> list[str]:
    if key.status == "revoked" and key.compromised_at is not None:
        return [
            (
                f"the signing key was revoked later, as compromised from "
                f"{format_instant(key.compromised_at)}; this document was signed before that, "
                "so it stays valid"
            )
        ]
    return []


def _validity(signed: SignedDocument, now: int) -> str:
    document = signed.document
    if not isinstance(document, ImportCertificate | ExportAuthorization):
        return "not limited in time"
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    span = f"{document.valid_from.isoformat()} to {document.valid_until.isoformat()}"
    if today < document.valid_from:
        return f"not yet in force on {today.isoformat()} (valid {span})"
    if today > document.valid_until:
        return f"EXPIRED on {document.valid_until.isoformat()} (valid {span})"
    return f"in force on {today.isoformat()} (valid {span})"


def _chain(signed: SignedDocument) -> tuple[ChainLink, ...]:
    document = signed.document
    if isinstance(document, ExportAuthorization):
        certificate = document.import_certificate
        return (
            ChainLink(
                relation="issued against import certificate",
                document_id=certificate.id.hex(),
                number=certificate.number,
            ),
        )
    if isinstance(document, Endorsement):
        return (
            ChainLink(
                relation="endorses export authorization",
                document_id=document.export_authorization.hex(),
                number=document.export_authorization_number,
            ),
        )
    if isinstance(document, Cancellation):
        return (ChainLink(relation="cancels document", document_id=document.document.hex()),)
    if isinstance(document, Message):
        return (
            ChainLink(relation="is a message about document", document_id=document.about.hex()),
        )
    return ()
