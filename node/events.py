"""Wake-ups for the event feed: the store commits events; subscribers wait for new ones.

The feed itself is the ``events`` table, so a client that reconnects with ``Last-Event-ID``
misses nothing. This module only tells waiting server-sent-event handlers that something new
was committed, without polling the database.
"""

from __future__ import annotations

import asyncio

__all__ = ["EventBus"]


class EventBus:
    """Notifies waiters when the store commits events; closed at shutdown to release them."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()
        self._latest = 0
        self._closed = False

    @property
    def latest(self) -> int:
        """The highest event sequence number announced so far."""
        return self._latest

    @property
    def closed(self) -> bool:
        """Whether the node is shutting down."""
        return self._closed

    def notify(self, seqs: list[int]) -> None:
        """Announce committed events (a ``Store`` listener; not async, never blocks)."""
        if seqs:
            self._latest = max(self._latest, *seqs)
        self._changed.set()
        self._changed = asyncio.Event()

    def close(self) -> None:
        """Release every waiter; later waits return at once."""
        self._closed = True
        self._changed.set()

    async def wait_beyond(self, seq: int) -> None:
        """Return once an event after ``seq`` is announced or the bus is closed.

        Callers bound the wait with ``asyncio.timeout`` (to send keep-alives).
        """
        if self._closed or self._latest > seq:
            return
        await self._changed.wait()
