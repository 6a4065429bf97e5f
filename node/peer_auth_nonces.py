"""The replay cache of signed node-to-node requests: the nonces seen inside the window.

:class:`NonceCache` is an in-memory structure, bounded, whose contents the caller may also
persist and :meth:`NonceCache.load` back after a restart. :mod:`permitnet.node.peer_auth` records
each verified request's key identifier and nonce in it. Import the name from there.
"""

from __future__ import annotations

from collections import OrderedDict

from permitnet.node.peer_auth_claims import PeerReplayError

__all__ = ["NonceCache"]


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
