"""Signed node-to-node requests: a COSE_Sign1 envelope over method, target, body digest and time.

Every request one node makes to another carries an ``Authorization`` header::

    Authorization: PermitNet-COSE <base64url, no padding, of a tagged COSE_Sign1 message>

signed with the sending node's Ed25519 key (the ``kid`` in the protected header is the key's
registry identifier). The payload is a deterministic CBOR map (see :class:`RequestClaims`)
binding the HTTP method, the request target (path and query), the SHA-256 of the body, the
sending and the receiving country, a Unix timestamp and a random 16-byte nonce. The receiver
checks, in this order: the header's shape, the key (the registry must list it for the sending
country and it must be valid now), the signature, the method, target, digest and audience, the
timestamp window, and finally that the nonce has not been seen inside the window. A replay is
therefore refused twice over: an old request falls outside the window, and a fresh copy hits
the nonce cache.

The envelope rather than RFC 9421 HTTP Message Signatures: the node already has a strict COSE
verifier, and a single signed CBOR map has no canonicalisation of header fields to get wrong.

This module does no I/O: the clock and the key lookup are passed in, and the nonce cache is an
in-memory structure whose contents the caller may also persist.

The claims map and its CBOR form, with the errors, are in :mod:`permitnet.node.peer_auth_claims`,
the nonce cache in :mod:`permitnet.node.peer_auth_nonces`. Import the names from here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from permitnet.node.peer_auth_claims import (
    MAX_HEADER_SIZE,
    NONCE_SIZE,
    PeerAuthError,
    PeerReplayError,
    RequestClaims,
    UnknownPeerKeyError,
)
from permitnet.node.peer_auth_nonces import NonceCache
from permitnet.protocol.cose import Sign1Message, sign1
from permitnet.protocol.errors import ProtocolError, RegistryError

if TYPE_CHECKING:
    from permitnet.protocol.cose import Ed25519Check
    from permitnet.protocol.registry_view import RegistryView

__all__ = [
    "AUTH_SCHEME",
    "MAX_CLOCK_SKEW",
    "REQUEST_CONTENT_TYPE",
    "AuthenticatedPeer",
    "NonceCache",
    "PeerAuthError",
    "PeerKey",
    "PeerKeyResolver",
    "PeerReplayError",
    "RequestClaims",
    "UncheckedRequest",
    "UnknownPeerKeyError",
    "body_digest",
    "prepare_request",
    "resolver_from_registry",
    "sign_request",
    "verify_request",
]

#: The HTTP authentication scheme name.
AUTH_SCHEME: Final = "PermitNet-COSE"
#: How far (seconds) a request's timestamp may be from the receiver's clock, either way.
MAX_CLOCK_SKEW: Final = 300
#: The COSE content type of a request envelope: domain separation, so that a signed request can
#: never be taken for a document (``application/permitnet-document+cbor``) or the reverse.
REQUEST_CONTENT_TYPE: Final = "application/permitnet-request+cbor"


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerKey:
    """A node signing key as the registry lists it, resolved for one point in time."""

    country: str
    public_key: bytes


#: Looks up a key identifier valid at a Unix time; raises :class:`UnknownPeerKeyError` when the
#: registry does not list it, or lists it as revoked, retired or not yet valid at that time.
PeerKeyResolver = Callable[[bytes, int], PeerKey]


def resolver_from_registry(current_view: Callable[[], RegistryView | None]) -> PeerKeyResolver:
    """Return a key resolver over the node's current verified registry view.

    A request is live traffic, so a key the registry lists as revoked is refused whatever its
    compromise time (documents signed before the compromise stay valid; new requests do not).

    Args:
        current_view: returns the registry view in force, or None before the first one.
    """

    def resolve(kid: bytes, at: int) -> PeerKey:
        view = current_view()
        if view is None:
            raise UnknownPeerKeyError("this node has no registry data yet to check peer keys")
        key = view.key(kid)
        if key is None:
            raise UnknownPeerKeyError(f"key {kid.hex()} is not listed by the registry")
        if key.status == "revoked":
            raise UnknownPeerKeyError(f"key {kid.hex()} of {key.country} is revoked")
        try:
            view.check_signer(kid, key.country, at)
        except RegistryError as e:
            raise UnknownPeerKeyError(str(e)) from e
        return PeerKey(country=key.country, public_key=key.public_key)

    return resolve


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthenticatedPeer:
    """The outcome of a successful verification: who sent the request, with which key."""

    country: str
    kid: bytes
    claims: RequestClaims


def body_digest(body: bytes) -> bytes:
    """Return the SHA-256 of a request body."""
    return hashlib.sha256(body).digest()


def sign_request(
    *,
    method: str,
    target: str,
    body: bytes,
    sender: str,
    audience: str,
    signing_key: bytes,
    kid: bytes,
    now: int,
    nonce: bytes | None = None,
) -> str:
    """Return the ``Authorization`` header value for a node-to-node request.

    Args:
        method: the HTTP method, upper case.
        target: the request path with its query string, exactly as sent.
        body: the exact request body (empty for GET).
        sender: the sending node's country.
        audience: the receiving node's country.
        signing_key: the sending node's 32-byte Ed25519 seed.
        kid: the registry key identifier of that key.
        now: the current Unix time.
        nonce: 16 random bytes; drawn from ``secrets`` when omitted (tests pass their own).

    Raises:
        PeerAuthError: an argument cannot form valid claims.
    """
    claims = RequestClaims(
        method=method,
        target=target,
        body_sha256=body_digest(body),
        sender=sender,
        audience=audience,
        timestamp=now,
        nonce=secrets.token_bytes(NONCE_SIZE) if nonce is None else nonce,
    )
    envelope = sign1(claims.to_payload(), signing_key, kid, content_type=REQUEST_CONTENT_TYPE)
    token = base64.urlsafe_b64encode(envelope).rstrip(b"=").decode("ascii")
    return f"{AUTH_SCHEME} {token}"


def verify_request(
    header: str | None,
    *,
    method: str,
    target: str,
    body: bytes,
    audience: str,
    now: int,
    resolve_key: PeerKeyResolver,
    nonces: NonceCache,
) -> AuthenticatedPeer:
    """Verify a node-to-node request's ``Authorization`` header and remember its nonce.

    Args:
        header: the ``Authorization`` header value, or ``None`` when absent.
        method: the request's HTTP method.
        target: the request's path and query string, exactly as received.
        body: the exact request body.
        audience: this node's own country.
        now: the current Unix time.
        resolve_key: the registry lookup of a key identifier at a time.
        nonces: the replay cache; the nonce is recorded only when every other check passed.

    Returns:
        The authenticated sender.

    Raises:
        PeerAuthError: the header is missing or malformed, the signature does not verify, or
            the claims do not match this request or this node.
        UnknownPeerKeyError: the registry does not list the key, or the key belongs to another
            country than the one the request claims to come from.
        PeerReplayError: the timestamp is outside the window or the nonce was already seen.
    """
    unchecked = prepare_request(header, now=now, resolve_key=resolve_key)
    return unchecked.finish(
        holds=unchecked.check.holds(),
        method=method,
        target=target,
        body=body,
        audience=audience,
        now=now,
        nonces=nonces,
    )


def prepare_request(
    header: str | None, *, now: int, resolve_key: PeerKeyResolver
) -> UncheckedRequest:
    """Parse the ``Authorization`` header and find the sender's key, not yet verifying.

    The first step of :func:`verify_request`, for a caller that runs the Ed25519 check
    elsewhere and then calls :meth:`UncheckedRequest.finish`.

    Raises:
        PeerAuthError: the header is missing or malformed.
        UnknownPeerKeyError: the registry does not list the key now.
    """
    envelope = _decode_header(header)
    try:
        message = Sign1Message.from_bytes(envelope)
    except ProtocolError as e:
        raise PeerAuthError(f"the request signature envelope is malformed: {e}") from e
    kid = message.kid
    if kid is None or not message.kid_is_protected:
        raise PeerAuthError("the request signature must carry a protected kid")
    if message.content_type != REQUEST_CONTENT_TYPE:
        raise PeerAuthError(
            f"the request envelope's content type is {message.content_type!r}, "
            f"not {REQUEST_CONTENT_TYPE!r}"
        )
    key = resolve_key(kid, now)
    try:
        check = message.signature_check(key.public_key)
    except ProtocolError as e:
        raise PeerAuthError(f"the request signature does not verify: {e}") from e
    return UncheckedRequest(message=message, kid=kid, key=key, check=check)


@dataclass(frozen=True, slots=True)
class UncheckedRequest:
    """A request envelope parsed and matched to the sender's key, not yet verified."""

    message: Sign1Message
    kid: bytes
    key: PeerKey
    #: The Ed25519 verification of the envelope.
    check: Ed25519Check

    def finish(
        self,
        *,
        holds: bool,
        method: str,
        target: str,
        body: bytes,
        audience: str,
        now: int,
        nonces: NonceCache,
    ) -> AuthenticatedPeer:
        """Return the authenticated sender, given whether :attr:`check` held.

        Raises:
            The errors of :func:`verify_request` after the key lookup.
        """
        kid, key = self.kid, self.key
        try:
            payload = self.message.checked_payload(self.check, holds=holds)
        except ProtocolError as e:
            raise PeerAuthError(f"the request signature does not verify: {e}") from e
        claims = RequestClaims.from_payload(payload)
        if claims.sender != key.country:
            raise UnknownPeerKeyError(
                f"key {kid.hex()} belongs to {key.country}, not to {claims.sender}"
            )
        if claims.audience != audience:
            raise PeerAuthError(f"the request is addressed to {claims.audience}, not to {audience}")
        if claims.method != method or claims.target != target:
            raise PeerAuthError(
                f"the request was signed for {claims.method} {claims.target}, not {method} {target}"
            )
        if claims.body_sha256 != body_digest(body):
            raise PeerAuthError("the body does not match the signed digest")
        if abs(now - claims.timestamp) > MAX_CLOCK_SKEW:
            raise PeerReplayError(
                f"the request timestamp {claims.timestamp} is more than {MAX_CLOCK_SKEW} s "
                f"from this node's clock ({now})"
            )
        nonces.remember(kid + claims.nonce, expires_at=claims.timestamp + MAX_CLOCK_SKEW, now=now)
        return AuthenticatedPeer(country=key.country, kid=kid, claims=claims)


def _decode_header(header: str | None) -> bytes:
    if header is None:
        raise PeerAuthError(f"node-to-node requests need an Authorization: {AUTH_SCHEME} header")
    if len(header) > MAX_HEADER_SIZE:
        raise PeerAuthError("the Authorization header is too large")
    scheme, _, token = header.partition(" ")
    if scheme != AUTH_SCHEME or not token:
        raise PeerAuthError(f"the Authorization header must use the {AUTH_SCHEME} scheme")
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as e:
        raise PeerAuthError("the Authorization token is not base64url") from e
