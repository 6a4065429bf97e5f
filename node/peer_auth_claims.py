"""The claims of a signed node-to-node request, their CBOR form, and peer authentication's errors.

:class:`RequestClaims` is the deterministic CBOR map that the request envelope of
:mod:`permitnet.node.peer_auth` signs: the HTTP method, the request target, the SHA-256 of the
body, the sending and the receiving country, a Unix timestamp and a random nonce, under a
version marker. Its constructor checks each field's shape; :meth:`RequestClaims.from_payload`
refuses anything but a version-1 map of exactly those keys. The errors here are the ones every
step of peer authentication raises. Import the names from :mod:`permitnet.node.peer_auth`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from permitnet.node import errors
from permitnet.protocol.cbor import decode_cbor, encode_cbor
from permitnet.protocol.errors import ProtocolError

__all__ = [
    "CLAIMS_VERSION",
    "MAX_HEADER_SIZE",
    "NONCE_SIZE",
    "PeerAuthError",
    "PeerReplayError",
    "RequestClaims",
    "UnknownPeerKeyError",
]

#: Size of the random nonce in bytes.
NONCE_SIZE: Final = 16
#: Version marker of the claims map; anything else is refused.
CLAIMS_VERSION: Final = 1
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
