"""The node's background loops: a failed round or worker is logged and runs again; stop ends them."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from permitnet.node.background import every, stop, supervise

if TYPE_CHECKING:
    import pytest


async def test_every_runs_again_after_a_failed_round(caplog: pytest.LogCaptureFixture) -> None:
    rounds: list[int] = []
    third = asyncio.Event()

    async def work() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise RuntimeError("registry unreachable")
        if len(rounds) == 3:
            third.set()

    task = asyncio.create_task(every(0, work, "registry refresh"))
    async with asyncio.timeout(5):
        await third.wait()
    await stop([task])
    assert task.cancelled()
    assert "registry refresh failed: RuntimeError: registry unreachable" in caplog.text


async def test_supervise_restarts_a_failed_worker(caplog: pytest.LogCaptureFixture) -> None:
    starts: list[int] = []
    restarted = asyncio.Event()

    async def worker() -> None:
        starts.append(len(starts))
        if len(starts) == 1:
            raise ValueError("bug in the worker")
        restarted.set()
        await asyncio.Event().wait()  # runs until stopped

    caplog.set_level(logging.ERROR)
    task = asyncio.create_task(supervise("delivery", worker, pause=0))
    async with asyncio.timeout(5):
        await restarted.wait()
    await stop([task])
    assert starts == [0, 1]
    assert "delivery failed; restarting in 0 s" in caplog.text
    assert "ValueError: bug in the worker" in caplog.text  # with its traceback


async def test_stop_ends_running_and_finished_tasks() -> None:
    async def done() -> None:
        return None

    finished = asyncio.create_task(done())
    await finished
    running = asyncio.create_task(asyncio.Event().wait())
    await stop([finished, running])
    assert running.cancelled()
    assert finished.done()
    assert not finished.cancelled()
