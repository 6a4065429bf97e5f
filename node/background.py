"""The node's background tasks: periodic rounds, supervised workers, and stopping them.

A node runs several loops beside its requests (delivery, pull, registry refresh, overdue flags,
housekeeping, split-view comparison, LAN discovery). None of them may stop for good because one
round failed: the state is in the database, so running again loses nothing. Each is a task
started in an aiohttp cleanup context and stopped with :func:`stop` when the node stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

__all__ = ["RESTART_PAUSE_SECONDS", "every", "stop", "supervise"]

_log = logging.getLogger(__name__)

#: How long a supervised worker that failed waits before it starts again.
RESTART_PAUSE_SECONDS: Final = 5.0


async def every(seconds: float, work: Callable[[], Awaitable[object]], what: str) -> None:
    """Run ``work`` now and then every ``seconds``; a failed round is logged, not fatal."""
    while True:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - one failed round must not stop the loop
            _log.warning("%s failed: %s: %s", what, type(e).__name__, e, exc_info=e)
        await asyncio.sleep(seconds)


async def supervise(
    name: str, work: Callable[[], Awaitable[None]], *, pause: float = RESTART_PAUSE_SECONDS
) -> None:
    """Run the long-running ``work``; whenever it fails, log it and start it again.

    It starts again ``pause`` seconds after it failed.
    """
    while True:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - logged with its traceback; see below
            # A bug in a worker must not stop it for good: the state is in the database, so
            # restarting the worker loses nothing.
            _log.exception("%s failed; restarting in %s s", name, pause)
        await asyncio.sleep(pause)


async def stop(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until each has ended."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
