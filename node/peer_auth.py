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
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from permitnet.node import errors
from permitnet.protocol.cbor import decode_cbor, encode_cbor
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
#: Size of the random nonce in bytes.
NONCE_SIZE: Final = 16
#: Version marker of the claims map; anything else is refused.
CLAIMS_VERSION: Final = 1
#: The COSE content type of a request envelope: domain separation, so that a signed request can
#: never be taken for a document (``application/permitnet-document+cbor``) or the reverse.
REQUEST_CONTENT_TYPE: Final = "application/permitnet-request+cbor"
#: The largest Authorization header accepted (a signed claims map is about 250 bytes).
MAX_HEADER_SIZE: Final = 2048
_ALLOWED_METHODS: Final = frozenset({"GET", "POST", "PUT", "DELETE"})


class PeerAuthError(errors.UnauthorizedError):
    """A node-to-node request whose signature envelope is missing or not acceptable."""

    code = "peer_auth_failed"


class UnknownPeerKeyError(PeerAuthError):
    """The signing key is not one the registry lists as valid for a participating country."""

    status_hint = 403
    code = "unknown_peer_key"


class PeerReplayError(PeerAuthError, errors.ReplayError):
    """A request whose nonce was already seen, or whose timestamp is outside the window."""

    # 401 rather than ReplayError's 409: the sender should re-sign, not reconcile state.
    status_hint = 401
    code = "replay"


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
class RequestClaims:
    """What a signed node-to-node request asserts about itself."""

    method: str
    target: str
    body_sha256: bytes
    sender: str
    audience: str
    timestamp: int
    nonce: bytes

    def __post_init__(self) -> None:
        if self.method not in _ALLOWED_METHODS:
            raise PeerAuthError(f"method {self.method!r} is not used between nodes")
        if not self.target.startswith("/"):
            raise PeerAuthError("the request target must be an absolute path")
        if len(self.body_sha256) != 32:
            raise PeerAuthError("the body digest must be 32 bytes of SHA-256")
        if len(self.nonce) != NONCE_SIZE:
            raise PeerAuthError(f"the nonce must be {NONCE_SIZE} bytes")
        for name, country in (("sender", self.sender), ("audience", self.audience)):
            if len(country) != 2 or not country.isascii() or not country.isupper():
                raise PeerAuthError(f"{name} must be an ISO 3166-1 alpha-2 code, got {country!r}")
        if self.timestamp < 0:
            raise PeerAuthError("the timestamp must be non-negative Unix seconds")

    def to_payload(self) -> bytes:
        """Encode the claims as the deterministic CBOR payload that is signed."""
        return encode_cbor(
            {
                "v": CLAIMS_VERSION,
                "method": self.method,
                "target": self.target,
                "body_sha256": self.body_sha256,
                "from": self.sender,
                "to": self.audience,
                "ts": self.timestamp,
                "nonce": self.nonce,
            }
        )

    @classmethod
    def from_payload(cls, payload: bytes) -> RequestClaims:
        """Decode and check a claims payload.

        Raises:
            PeerAuthError: the payload is not a version-1 claims map with the right types.
        """
        try:
            item = decode_cbor(payload, max_size=MAX_HEADER_SIZE, max_depth=2)
        except ProtocolError as e:
            raise PeerAuthError(f"the request claims are not strict CBOR: {e}") from e
        expected = {"v", "method", "target", "body_sha256", "from", "to", "ts", "nonce"}
        if not isinstance(item, dict) or set(item) != expected:
            raise PeerAuthError(f"the request claims must be a map with exactly {sorted(expected)}")
        if item["v"] != CLAIMS_VERSION or isinstance(item["v"], bool):
            raise PeerAuthError(f"request claims version {item['v']!r} is not supported")
        texts = ("method", "target", "from", "to")
        if not all(isinstance(item[k], str) for k in texts):
            raise PeerAuthError("method, target, from and to must be text")
        if not isinstance(item["body_sha256"], bytes) or not isinstance(item["nonce"], bytes):
            raise PeerAuthError("body_sha256 and nonce must be byte strings")
        if not isinstance(item["ts"], int) or isinstance(item["ts"], bool):
            raise PeerAuthError("ts must be an integer")
        return cls(
            method=item["method"],
            target=item["target"],
            body_sha256=item["body_sha256"],
            sender=item["from"],
            audience=item["to"],
            timestamp=item["ts"],
            nonce=item["nonce"],
        )


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


class NonceCache:
    """The nonces seen inside the replay window, each kept until its request would be stale.

    Bounded: when ``max_entries`` live nonces are held, new requests are refused rather than
    older nonces forgotten, because forgetting one would let its request be replayed.
    """

    def __init__(self, *, max_entries: int = 1_000_000) -> None:
        self._expiry: OrderedDict[bytes, int] = OrderedDict()
        self._max_entries = max_entries

    def __len__(self) -> int:
        return len(self._expiry)

    def __contains__(self, key: object) -> bool:
        return key in self._expiry

    def remember(self, key: bytes, *, expires_at: int, now: int) -> None:
        """Record ``key`` until ``expires_at``.

        Raises:
            PeerReplayError: ``key`` is already recorded and has not expired, or the cache is full.
        """
        self.prune(now)
        seen = self._expiry.get(key)
        if seen is not None and seen >= now:
            raise PeerReplayError("this request was already received (its nonce has been seen)")
        if len(self._expiry) >= self._max_entries:
            raise PeerReplayError(
                "too many recent requests to check for replays; try again shortly"
            )
        self._expiry[key] = expires_at
        # Entries are mostly added in expiry order, so keeping insertion order lets prune stop
        # at the first live entry; a late out-of-order entry only delays its own removal.
        self._expiry.move_to_end(key)

    def load(self, entries: list[tuple[bytes, int]], *, now: int) -> None:
        """Restore entries persisted before a restart, skipping those already expired."""
        for key, expires_at in sorted(entries, key=lambda e: e[1]):
            if expires_at >= now:
                self._expiry[key] = expires_at

    def prune(self, now: int) -> None:
        """Forget the nonces whose requests can no longer pass the timestamp check."""
        while self._expiry:
            key, expires_at = next(iter(self._expiry.items()))
            if expires_at >= now:
                break
            del self._expiry[key]
