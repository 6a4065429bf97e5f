"""The signed challenge that makes LAN discovery safe, and what discovery announces.

Nothing discovered on a LAN is trusted: anyone there can advertise anything. A discovered address
is used for a peer only after that peer has answered a challenge: the challenger sends a fresh
random nonce to ``POST /peer/v1/challenge`` at the discovered address, and the peer returns a
COSE_Sign1 signed with its node key over the nonce, its country, the challenger's country and the
time. The answer is checked with the key the registry lists for the advertised country (through
the same key resolver that signed node requests use), so a discovered address is only ever as
trusted as the registry's view of that country's key.

A relay that forwards the challenge to the real node can make its own address pass; that is
harmless because every document and every node-to-node request is signed end to end, so the
relay can at most drop traffic, which it could do anyway from where it sits.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import aiohttp
from aiohttp import web

from permitnet.node.errors import NodeError, UnauthorizedError
from permitnet.protocol.cbor import decode_cbor, encode_cbor
from permitnet.protocol.cose import Sign1Message, sign1
from permitnet.protocol.errors import ProtocolError

if TYPE_CHECKING:
    from collections.abc import Callable

    from permitnet.node.peer_auth import PeerKey, PeerKeyResolver

__all__ = [
    "CHALLENGE_KEY",
    "CHALLENGE_PATH",
    "Advertisement",
    "Challenge",
    "ChallengeResponder",
    "DiscoveredNode",
    "DiscoveryError",
    "answer_challenge",
    "make_challenge",
    "prove",
    "setup_challenge",
    "verify_answer",
]

CHALLENGE_PATH: Final = "/peer/v1/challenge"
#: Version marker of the TXT record and of both challenge maps.
VERSION: Final = 1
NONCE_SIZE: Final = 32
#: How far an answer's signing time may be from the challenger's clock, either way.
MAX_SKEW: Final = 300
MAX_CHALLENGE_SIZE: Final = 256
MAX_ANSWER_SIZE: Final = 1024
#: Domain separation: a challenge answer can never be mistaken for a document or a request.
ANSWER_TYPE: Final = "permitnet-discovery-answer"


class DiscoveryError(UnauthorizedError):
    """A discovered node that could not prove who it is, or a malformed discovery message."""

    code = "discovery_failed"


def _country(value: object, what: str) -> str:
    if not isinstance(value, str) or len(value) != 2 or not value.isascii() or not value.isupper():
        raise DiscoveryError(f"{what} must be an ISO 3166-1 alpha-2 code, got {value!r}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Advertisement:
    """What a node announces in its zeroconf TXT record.

    Attributes:
        country: the node's country.
        kid: the registry identifier of the node's signing key (its fingerprint).
        scheme: ``http`` or ``https``.
        path: the API base path on the advertised host and port (``/`` usually).
    """

    country: str
    kid: bytes
    scheme: str = "http"
    path: str = "/"

    def __post_init__(self) -> None:
        _country(self.country, "country")
        if len(self.kid) != 16:
            raise DiscoveryError("kid must be the 16-byte key identifier")
        if self.scheme not in {"http", "https"}:
            raise DiscoveryError(f"scheme must be http or https, got {self.scheme!r}")
        if not self.path.startswith("/") or len(self.path) > 200:
            raise DiscoveryError("path must be an absolute path of at most 200 characters")

    def to_properties(self) -> dict[str, str]:
        """Return the TXT record's key/value pairs."""
        return {
            "v": str(VERSION),
            "country": self.country,
            "kid": self.kid.hex(),
            "scheme": self.scheme,
            "path": self.path,
        }

    @classmethod
    def from_properties(cls, properties: dict[bytes, bytes | None]) -> Advertisement:
        """Parse a TXT record.

        Raises:
            DiscoveryError: a field is missing, of another version, or malformed.
        """
        try:
            text = {k.decode("ascii"): (v or b"").decode("ascii") for k, v in properties.items()}
        except UnicodeDecodeError as e:
            raise DiscoveryError("the TXT record is not ASCII") from e
        if text.get("v") != str(VERSION):
            raise DiscoveryError(f"TXT record version {text.get('v')!r} is not supported")
        try:
            kid = bytes.fromhex(text.get("kid", ""))
        except ValueError as e:
            raise DiscoveryError("kid is not hexadecimal") from e
        return cls(
            country=text.get("country", ""),
            kid=kid,
            scheme=text.get("scheme", "http"),
            path=text.get("path", "/"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscoveredNode:
    """A node seen on the LAN: not trusted until :func:`verify_answer` has passed.

    Attributes:
        name: the zeroconf service instance name.
        advertisement: what its TXT record claims.
        addresses: its IP addresses.
        port: its TCP port.
    """

    name: str
    advertisement: Advertisement
    addresses: tuple[str, ...]
    port: int

    @property
    def urls(self) -> tuple[str, ...]:
        """The API base URLs at each address."""
        adv = self.advertisement
        out = []
        for address in self.addresses:
            host = f"[{address}]" if ":" in address else address
            out.append(f"{adv.scheme}://{host}:{self.port}{adv.path.rstrip('/')}")
        return tuple(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class Challenge:
    """What the challenger sends: a fresh nonce, who asks, and whom it expects to answer."""

    nonce: bytes
    challenger: str
    audience: str

    def to_payload(self) -> bytes:
        """Encode as the request body (deterministic CBOR)."""
        return encode_cbor(
            {"v": VERSION, "nonce": self.nonce, "from": self.challenger, "to": self.audience}
        )

    @classmethod
    def from_payload(cls, body: bytes) -> Challenge:
        """Decode a request body.

        Raises:
            DiscoveryError: the body is not a version-1 challenge map.
        """
        if len(body) > MAX_CHALLENGE_SIZE:
            raise DiscoveryError(f"a challenge is at most {MAX_CHALLENGE_SIZE} bytes")
        item = _decode_map(body, {"v", "nonce", "from", "to"}, "challenge")
        nonce = item["nonce"]
        if not isinstance(nonce, bytes) or len(nonce) != NONCE_SIZE:
            raise DiscoveryError(f"the challenge nonce must be {NONCE_SIZE} bytes")
        return cls(
            nonce=nonce,
            challenger=_country(item["from"], "from"),
            audience=_country(item["to"], "to"),
        )


def _decode_map(raw: bytes, keys: set[str], what: str) -> dict[str, object]:
    try:
        item = decode_cbor(raw, max_size=MAX_ANSWER_SIZE, max_depth=2)
    except ProtocolError as e:
        raise DiscoveryError(f"the {what} is not strict CBOR: {e}") from e
    if not isinstance(item, dict) or set(item) != keys:
        raise DiscoveryError(f"the {what} must be a map with exactly {sorted(keys)}")
    if item["v"] != VERSION or isinstance(item["v"], bool):
        raise DiscoveryError(f"{what} version {item['v']!r} is not supported")
    return {str(k): v for k, v in item.items()}


def make_challenge(*, challenger: str, audience: str) -> Challenge:
    """Return a challenge with a fresh random nonce."""
    return Challenge(
        nonce=secrets.token_bytes(NONCE_SIZE), challenger=challenger, audience=audience
    )


def answer_challenge(
    body: bytes, *, country: str, signing_key: bytes, kid: bytes, now: int
) -> bytes:
    """Sign the answer to a challenge with this node's key.

    Args:
        body: the challenge request body.
        country: this node's country.
        signing_key: this node's 32-byte Ed25519 seed.
        kid: the registry identifier of that key.
        now: the current Unix time.

    Returns:
        The COSE_Sign1 answer.

    Raises:
        DiscoveryError: the challenge is malformed or addressed to another country.
    """
    challenge = Challenge.from_payload(body)
    if challenge.audience != country:
        raise DiscoveryError(f"the challenge is for {challenge.audience}, this node is {country}")
    payload = encode_cbor(
        {
            "v": VERSION,
            "type": ANSWER_TYPE,
            "nonce": challenge.nonce,
            "country": country,
            "challenger": challenge.challenger,
            "ts": now,
        }
    )
    return sign1(payload, signing_key, kid)


def verify_answer(
    raw: bytes,
    *,
    challenge: Challenge,
    advertisement: Advertisement,
    resolve_key: PeerKeyResolver,
    now: int,
) -> PeerKey:
    """Check a challenge answer against the registry's view of the advertised country's key.

    Args:
        raw: the COSE_Sign1 answer as received.
        challenge: the challenge this node sent.
        advertisement: what the discovered node claimed in its TXT record.
        resolve_key: the registry lookup of a key identifier at a time.
        now: the current Unix time.

    Returns:
        The registry's record of the key that signed.

    Raises:
        DiscoveryError: the answer is malformed, not signed by a key the registry lists for the
            advertised country, not for this nonce or challenger, or out of the time window.
    """
    if len(raw) > MAX_ANSWER_SIZE:
        raise DiscoveryError(f"an answer is at most {MAX_ANSWER_SIZE} bytes")
    try:
        message = Sign1Message.from_bytes(raw)
    except ProtocolError as e:
        raise DiscoveryError(f"the answer is not a valid COSE_Sign1 message: {e}") from e
    kid = message.kid
    if kid is None or not message.kid_is_protected:
        raise DiscoveryError("the answer must carry a protected kid")
    if kid != advertisement.kid:
        raise DiscoveryError(
            f"signed with key {kid.hex()}, but {advertisement.kid.hex()} was advertised"
        )
    try:
        key = resolve_key(kid, now)
    except NodeError as e:
        raise DiscoveryError(f"key {kid.hex()} is not listed by the registry: {e}") from e
    if key.country != advertisement.country:
        raise DiscoveryError(
            f"key {kid.hex()} belongs to {key.country}, "
            f"not to the advertised {advertisement.country}"
        )
    try:
        payload = message.verify(key.public_key)
    except ProtocolError as e:
        raise DiscoveryError(f"the answer's signature does not verify: {e}") from e
    item = _decode_map(payload, {"v", "type", "nonce", "country", "challenger", "ts"}, "answer")
    if item["type"] != ANSWER_TYPE:
        raise DiscoveryError(f"the signed message is a {item['type']!r}, not a challenge answer")
    if item["nonce"] != challenge.nonce:
        raise DiscoveryError("the answer is for another nonce")
    if item["country"] != advertisement.country:
        raise DiscoveryError(f"the answer speaks for {item['country']!r}")
    if item["challenger"] != challenge.challenger:
        raise DiscoveryError(f"the answer is for challenger {item['challenger']!r}")
    ts = item["ts"]
    if not isinstance(ts, int) or isinstance(ts, bool) or abs(now - ts) > MAX_SKEW:
        raise DiscoveryError(f"the answer's time {ts!r} is more than {MAX_SKEW} s from {now}")
    return key


@dataclass(frozen=True, slots=True, kw_only=True)
class ChallengeResponder:
    """What the challenge endpoint needs: who this node is and how to sign."""

    country: str
    signing_key: Callable[[], bytes]
    kid: Callable[[], bytes]
    clock: Callable[[], int]


CHALLENGE_KEY: Final = web.AppKey("permitnet_challenge", ChallengeResponder)


async def _read_capped(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """Read a whole body, stopping once it is past ``limit`` bytes (callers refuse those).

    ``StreamReader.read(n)`` returns what has arrived so far, which may be only part of a
    body that came in several packets; this reads until the end or the limit.
    """
    body = bytearray()
    async for chunk in stream.iter_chunked(4096):
        body += chunk
        if len(body) > limit:
            break
    return bytes(body)


async def _challenge_handler(request: web.Request) -> web.Response:
    responder = request.app[CHALLENGE_KEY]
    body = await _read_capped(request.content, MAX_CHALLENGE_SIZE)
    try:
        answer = answer_challenge(
            body,
            country=responder.country,
            signing_key=responder.signing_key(),
            kid=responder.kid(),
            now=responder.clock(),
        )
    except DiscoveryError as e:
        raise web.HTTPBadRequest(text=str(e)) from e
    return web.Response(body=answer, content_type="application/cose")


def setup_challenge(app: web.Application, responder: ChallengeResponder) -> None:
    """Mount ``POST /peer/v1/challenge`` on a node app.

    The key is read through callables at each request, so a rotated key answers at once.
    """
    app[CHALLENGE_KEY] = responder
    app.router.add_post(CHALLENGE_PATH, _challenge_handler)


async def prove(
    session: aiohttp.ClientSession,
    node: DiscoveredNode,
    *,
    own_country: str,
    resolve_key: PeerKeyResolver,
    clock: Callable[[], int],
    per_url_seconds: float = 5.0,
) -> tuple[str, PeerKey]:
    """Challenge a discovered node at each of its URLs; return the first URL that proves itself.

    Args:
        session: an ``aiohttp.ClientSession``.
        node: the discovered node.
        own_country: this node's country (the challenger).
        resolve_key: the registry lookup of a key identifier at a time.
        clock: the current Unix time.
        per_url_seconds: seconds allowed per URL.

    Returns:
        The verified API base URL and the registry's record of the key.

    Raises:
        DiscoveryError: no URL answered with a valid proof; the message lists each failure.
    """
    failures: list[str] = []
    for url in node.urls:
        challenge = make_challenge(challenger=own_country, audience=node.advertisement.country)
        try:
            async with session.post(
                url + CHALLENGE_PATH,
                data=challenge.to_payload(),
                headers={"Content-Type": "application/cbor"},
                timeout=aiohttp.ClientTimeout(total=per_url_seconds),
            ) as response:
                raw = await _read_capped(response.content, MAX_ANSWER_SIZE)
                if response.status != 200:
                    failures.append(f"{url}: HTTP {response.status} {raw[:200]!r}")
                    continue
        except (aiohttp.ClientError, TimeoutError) as e:
            failures.append(f"{url}: {e or type(e).__name__}")
            continue
        try:
            key = verify_answer(
                raw,
                challenge=challenge,
                advertisement=node.advertisement,
                resolve_key=resolve_key,
                now=clock(),
            )
        except DiscoveryError as e:
            failures.append(f"{url}: {e}")
            continue
        return url, key
    raise DiscoveryError(f"{node.name} did not prove its key: " + "; ".join(failures or ["no URL"]))
