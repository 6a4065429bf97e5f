"""The rule identifiers of the Convention checks, and how a violation is raised.

Every rule that :mod:`permitnet.protocol.rules` applies has a stable identifier here, with
what it means; docs/protocol.md lists them with their source in the Conventions.
"""

from __future__ import annotations

from typing import Final

from permitnet.protocol.errors import RuleViolation

__all__ = ["RULES", "violation"]

#: Every rule identifier this module raises, with what it means.
RULES: Final[dict[str, str]] = {
    "certificate-cancelled": "the import certificate has been cancelled by its issuer",
    "certificate-not-yet-valid": "today is before the import certificate's validity",
    "certificate-expired": "today is after the import certificate's validity",
    "certificate-reference": "the authorization's reference does not match the certificate",
    "certificate-from-importing-country": "the certificate was not issued by the importing country",
    "certificate-addressed-to-exporting-country": "the certificate is not addressed to the "
    "exporting country",
    "parties-match": "the importer or exporter differs from the certificate's",
    "dated-in-future": "a date of issue is after today",
    "authorization-before-certificate": "the authorization is dated before the certificate",
    "validity-within-certificate": "the authorization's validity goes beyond the certificate's",
    "authorization-expired": "the authorization's validity has already ended",
    "single-consignment": "the certificate allows one consignment, already authorized",
    "substance-not-on-certificate": "a substance is not on the certificate",
    "quantity-exceeds-certificate": "more than the certificate still allows",
    "estimate-year": "the certificate's estimate year is outside its validity",
    "no-estimate": "no estimate or assessment is published for the substance and year",
    "estimate-exceeded": "more than the estimate still allows",
    "assessment-exceeded": "more than the assessment still allows",
    "endorsement-reference": "the endorsement does not refer to this authorization",
    "endorsement-by-importing-country": "the endorsement is not from the importing country",
    "endorsement-line": "an endorsed line is not a line of the authorization",
    "received-before-authorization": "received before the authorization was issued",
    "cancellation-by-issuer": "only the issuer of a document may cancel it",
    "cancellation-reference": "the cancellation does not refer to this document",
    "message-reference": "the message is not about this document",
    "message-parties": "the message does not pass between the document's two countries",
    "receipt-reference": "the receipt does not acknowledge this document",
    "receipt-by-recipient": "the receipt is not from the document's recipient to its issuer",
    "declaration-not-allowed": "the substance needs an import certificate and export "
    "authorization, not a declaration",
}


def violation(rule: str, message: str) -> RuleViolation:
    """Return the :class:`RuleViolation` for a documented rule (a programming error otherwise)."""
    assert rule in RULES, rule  # every rule raised is documented in RULES
    return RuleViolation(rule, message)
