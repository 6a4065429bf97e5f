"""Ed25519 verifications off the event loop: a worker process, fed in batches.

A receiving node checks two Ed25519 signatures per pushed request (the request's and each
document's), about 85 us each of one core. The event loop is the node's one busy thread, and
the GIL keeps a second thread from helping: libsodium releases it, but a verifying thread then
waits for the loop to hand it back after every call (measured: a thread got ~200 checks/s
beside a busy loop). A separate process has its own interpreter, so the checks run on another
core while the loop parses, answers and writes.

:class:`SignatureWorker` starts ``node/signature_child.py`` on first use and, until it is
ready, and whenever it is not (it died, it failed to start), runs the checks in this thread:
a check is never lost and never answered wrongly, only slower. A caller's checks are sent at
once, in a frame of their own, while fewer than :data:`MAX_IN_FLIGHT` frames are in flight;
past that they queue, and the next frame carries the checks of every caller that arrived
meanwhile. With two frames in flight, one-document requests at 16 in flight waited ~1.8 ms
for their answers, mostly queued behind the frames; with sixteen, ~1.0 ms, and the node took
6 % more of them per second (docs/performance.md).

The child is given only the public data it checks and an environment holding nothing but the
path to PyNaCl (not the node's, which may hold the key passphrase).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from permitnet.protocol.cose import Ed25519Check

__all__ = ["IN_THREAD", "InThreadChecks", "SignatureChecks", "SignatureWorker"]

log = logging.getLogger(__name__)

#: The child's script: run by path, so that it imports nothing of permitnet.
CHILD_SCRIPT: Final = Path(__file__).with_name("signature_child.py")
#: Frames sent and not yet answered: one per request in flight, up to the usual 16 of them.
MAX_IN_FLIGHT: Final = 16
#: Checks in one frame, at most (whole callers are added until it is reached).
FRAME_CHECKS: Final = 512
#: After the child fails, checks stay in this thread this long before it is started again.
RESTART_PAUSE_SECONDS: Final = 5.0
#: Failures in a row (no answer between them) after which no new child is started.
MAX_FAILURES: Final = 5
#: How long closing waits for the child to end once its stdin is closed.
STOP_TIMEOUT_SECONDS: Final = 5.0
_HEAD: Final = 4


class SignatureChecks(Protocol):
    """Whatever answers Ed25519 checks for the exchange: this thread or the worker."""

    async def holds(self, checks: Sequence[Ed25519Check]) -> list[bool]:
        """Whether each check's signature verifies, in order."""
        ...  # pragma: no cover - a protocol


class InThreadChecks:
    """Checks on the event loop's own thread (``[exchange] signature_worker = false``)."""

    async def holds(self, checks: Sequence[Ed25519Check]) -> list[bool]:
        """Whether each check's signature verifies, in order."""
        return [check.holds() for check in checks]


IN_THREAD: Final = InThreadChecks()


@dataclass(slots=True)
class _Job:
    checks: Sequence[Ed25519Check]
    answer: asyncio.Future[list[bool]]


def encode_frame(checks: Sequence[Ed25519Check]) -> bytes:
    """The request frame for ``checks`` (the format is in ``node/signature_child.py``)."""
    parts = [len(checks).to_bytes(_HEAD, "big")]
    for check in checks:
        parts += (
            check.public_key,
            check.signature,
            len(check.message).to_bytes(_HEAD, "big"),
            check.message,
        )
    body = b"".join(parts)
    return len(body).to_bytes(_HEAD, "big") + body


def _child_environment() -> dict[str, str]:
    # PyNaCl and its cffi backend, wherever this interpreter found them; nothing else.
    paths: dict[str, None] = {}
    for name in ("nacl", "_cffi_backend"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin is not None:
            origin = Path(spec.origin).resolve()
            # A package's origin is its __init__.py; a module's is its own file.
            paths[
                str(origin.parent.parent if spec.submodule_search_locations else origin.parent)
            ] = None
    return {"PYTHONPATH": os.pathsep.join(paths)}


class SignatureWorker:
    """Runs Ed25519 checks in a child process; falls back to this thread, never fails them.

    Use it under the application's ``cleanup_ctx`` and :meth:`close` it there.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._starting: asyncio.Task[None] | None = None
        self._queued: deque[_Job] = deque()
        self._in_flight: deque[list[_Job]] = deque()
        self._failed_at: float | None = None
        self._failures = 0
        self._reaping: asyncio.Task[int] | None = None
        self._closed = False
        #: Checks answered by the child, and in this thread (for the status and tests).
        self.checked_in_child = 0
        self.checked_in_thread = 0

    @property
    def running(self) -> bool:
        """Whether the child is up and answering."""
        return self._reader is not None and not self._reader.done()

    async def holds(self, checks: Sequence[Ed25519Check]) -> list[bool]:
        """Whether each check's signature verifies, in order."""
        if not checks:
            return []
        if not self.running:
            self._maybe_start()
            return self._in_thread(checks)
        job = _Job(checks, asyncio.get_running_loop().create_future())
        self._queued.append(job)
        self._send()
        return await job.answer

    def _in_thread(self, checks: Sequence[Ed25519Check]) -> list[bool]:
        self.checked_in_thread += len(checks)
        return [check.holds() for check in checks]

    def _maybe_start(self) -> None:
        if self._closed or (self._starting is not None and not self._starting.done()):
            return
        if self._failures >= MAX_FAILURES:
            return
        if self._failed_at is not None and self._clock() - self._failed_at < RESTART_PAUSE_SECONDS:
            return
        self._starting = asyncio.get_running_loop().create_task(
            self._start(), name="permitnet-signature-worker-start"
        )

    async def _start(self) -> None:
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-S",
                str(CHILD_SCRIPT),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=_child_environment(),
            )
        except OSError as e:
            self._failed(f"did not start ({e})")
            return
        if self._closed:
            await _stop(process)
            return
        self._process = process
        self._reader = asyncio.get_running_loop().create_task(
            self._read(process), name="permitnet-signature-worker"
        )

    def _send(self) -> None:
        process = self._process
        while self._queued and len(self._in_flight) < MAX_IN_FLIGHT and process is not None:
            frame: list[_Job] = []
            count = 0
            while self._queued and count < FRAME_CHECKS:
                job = self._queued.popleft()
                frame.append(job)
                count += len(job.checks)
            assert process.stdin is not None  # started with stdin=PIPE
            process.stdin.write(encode_frame([c for job in frame for c in job.checks]))
            self._in_flight.append(frame)

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None  # started with stdout=PIPE
        try:
            while True:
                head = await process.stdout.readexactly(_HEAD)
                body = await process.stdout.readexactly(int.from_bytes(head, "big"))
                self._answer(body)
                self._send()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError) as e:
            if not self._closed:
                self._failed(f"stopped ({e})")
        finally:
            self._process = None
            self._fail_over()
            if not self._closed:
                # A child that answered wrongly may still run: end it, reaped in the background.
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                self._reaping = asyncio.get_running_loop().create_task(process.wait())

    def _failed(self, what: str) -> None:
        self._failed_at = self._clock()
        self._failures += 1
        if self._failures >= MAX_FAILURES:
            log.error(
                "the signature worker %s, %d times in a row: signatures are checked in the "
                "event loop from now on (slower, not less safe); restart the node to try again",
                what,
                self._failures,
            )
        else:
            log.warning(
                "the signature worker %s; checking in the event loop, restart in %s s",
                what,
                RESTART_PAUSE_SECONDS,
            )

    def _answer(self, body: bytes) -> None:
        if not self._in_flight:
            raise ValueError("an answer frame came with no frame in flight")
        # Checked before the frame leaves the in-flight list: a bad answer leaves its checks
        # there, for _fail_over to answer here.
        frame = self._in_flight[0]
        count = int.from_bytes(body[:_HEAD], "big")
        expected = sum(len(job.checks) for job in frame)
        if count != expected or len(body) != _HEAD + count:
            raise ValueError(f"answer of {count} checks for a frame of {expected}")
        if not set(body[_HEAD:]) <= {0, 1}:
            raise ValueError("an answer byte is neither 0 nor 1")
        self._in_flight.popleft()
        self.checked_in_child += count
        self._failures = 0
        offset = _HEAD
        for job in frame:
            results = [byte == 1 for byte in body[offset : offset + len(job.checks)]]
            offset += len(job.checks)
            if not job.answer.done():  # its caller may have been cancelled
                job.answer.set_result(results)

    def _fail_over(self) -> None:
        # Whatever was sent or queued is answered here: nothing waits for a dead child.
        jobs = [job for frame in self._in_flight for job in frame] + list(self._queued)
        self._in_flight.clear()
        self._queued.clear()
        for job in jobs:
            if not job.answer.done():
                job.answer.set_result(self._in_thread(job.checks))

    async def close(self) -> None:
        """Stop the child (it ends at the end of its stdin) and answer what is left here."""
        self._closed = True
        if self._starting is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._starting
        if self._process is not None:
            await _stop(self._process)
        if self._reader is not None:
            # The child's end ends the reader, which answers what was in flight here.
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._reaping is not None:
            await self._reaping
        self._fail_over()


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.stdin is not None:
        process.stdin.close()
    try:
        async with asyncio.timeout(STOP_TIMEOUT_SECONDS):
            await process.wait()
    except TimeoutError:
        log.warning("the signature worker did not stop in %s s; killed", STOP_TIMEOUT_SECONDS)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
