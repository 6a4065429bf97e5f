"""The registry server's shared state: one Runner per app, serialising database work."""

from __future__ import annotations

import asyncio
import hashlib
from typing import TYPE_CHECKING, Final, TypeVar

from aiohttp import web

from permitnet.registry.proofs import ProofCache

if TYPE_CHECKING:
    from collections.abc import Callable

    from permitnet.registry.service import Registry

__all__ = ["CBOR", "RUNNER", "Runner", "cbor_response"]

CBOR: Final = "application/cbor"
T = TypeVar("T")


class Runner:
    """Runs registry operations one at a time in a worker thread (one SQLite connection)."""

    def __init__(self, registry: Registry, clock: Callable[[], int]) -> None:
        self.registry = registry
        self.clock = clock
        self.proofs = ProofCache()
        self._lock = asyncio.Lock()
        self._etags: dict[int, str] = {}

    async def run(self, fn: Callable[[Registry], T]) -> T:
        """Run ``fn(registry)`` in a thread, serialised with every other call."""
        async with self._lock:
            return await asyncio.to_thread(fn, self.registry)

    async def etag(self, version: int) -> str:
        """Return the ETag of snapshot ``version`` (its SHA-256, computed once)."""
        tag = self._etags.get(version)
        if tag is None:
            # Hashed in the worker thread too: a world-scale snapshot is several MB.
            digest = await self.run(
                lambda r: hashlib.sha256(r.store.artefact("snapshot", version)).hexdigest()
            )
            tag = f'"{digest}"'
            self._etags[version] = tag
        return tag


RUNNER: Final = web.AppKey("permitnet_registry_runner", Runner)


def cbor_response(body: bytes, **headers: str) -> web.Response:
    """Return signed bytes as they are, as ``application/cbor``."""
    return web.Response(body=body, content_type=CBOR, headers=headers)
