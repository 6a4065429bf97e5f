"""The signature worker: a real child process answers Ed25519 checks exactly as this thread would."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from permitnet.node import signature_child, signature_worker
from permitnet.node.signature_worker import (
    CHILD_SCRIPT,
    IN_THREAD,
    SignatureWorker,
    encode_frame,
)
from permitnet.protocol.cose import (
    Ed25519Check,
    Sign1Message,
    key_id,
    public_key_from_seed,
    sign1,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

SEED = bytes(range(32))
OTHER_SEED = bytes(range(1, 33))


def check(payload: bytes, *, seed: bytes = SEED, key_seed: bytes | None = None) -> Ed25519Check:
    """The check of ``payload`` signed with ``seed``, against the key of ``key_seed``."""
    message = Sign1Message.from_bytes(sign1(payload, seed, key_id(public_key_from_seed(seed))))
    return message.signature_check(public_key_from_seed(key_seed or seed))


GOOD = check(b"a good payload")
WRONG_KEY = check(b"signed by one key, checked with another", key_seed=OTHER_SEED)
TAMPERED = Ed25519Check(
    public_key=GOOD.public_key, signature=GOOD.signature, message=GOOD.message + b"x"
)
FLIPPED = Ed25519Check(
    public_key=GOOD.public_key,
    signature=bytes([GOOD.signature[0] ^ 1]) + GOOD.signature[1:],
    message=GOOD.message,
)
# A small-order point as the key: libsodium refuses it whatever the signature.
SMALL_ORDER_KEY = Ed25519Check(public_key=bytes(32), signature=GOOD.signature, message=GOOD.message)
CASES = [GOOD, WRONG_KEY, TAMPERED, FLIPPED, SMALL_ORDER_KEY]
EXPECTED = [True, False, False, False, False]


@pytest.fixture
async def worker() -> AsyncIterator[SignatureWorker]:
    running = SignatureWorker()
    try:
        yield running
    finally:
        await running.close()


async def started(worker: SignatureWorker) -> SignatureWorker:
    """Wait until the child answers (the first checks start it and run in this thread)."""
    await worker.holds([GOOD])
    async with asyncio.timeout(30):
        # The child starts in the background; the worker has no event for it.
        while not worker.running:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    return worker


def test_in_thread_answers_every_case() -> None:
    assert [c.holds() for c in CASES] == EXPECTED


async def test_in_thread_checks_answer_as_the_checks_do() -> None:
    assert await IN_THREAD.holds(CASES) == EXPECTED


async def test_the_child_answers_every_case_as_this_thread_does(worker: SignatureWorker) -> None:
    await started(worker)
    before = worker.checked_in_child
    assert await worker.holds(CASES) == EXPECTED
    assert worker.checked_in_child == before + len(CASES)


async def test_until_the_child_is_up_checks_run_here_and_are_still_right() -> None:
    worker = SignatureWorker()
    try:
        assert await worker.holds(CASES) == EXPECTED
        assert worker.checked_in_thread == len(CASES)
        assert worker.checked_in_child == 0
    finally:
        await worker.close()


async def test_no_checks_need_no_child(worker: SignatureWorker) -> None:
    assert await worker.holds([]) == []
    assert not worker.running


async def test_concurrent_callers_each_get_their_own_answers_in_order(
    worker: SignatureWorker,
) -> None:
    await started(worker)
    batches = [[CASES[(i + j) % len(CASES)] for j in range(i % 7 + 1)] for i in range(200)]
    answers = await asyncio.gather(*(worker.holds(batch) for batch in batches))
    for batch, answer in zip(batches, answers, strict=True):
        assert answer == [EXPECTED[CASES.index(c)] for c in batch]
    # Callers that arrive while frames are in flight share the next frame.
    assert worker.checked_in_child >= sum(len(b) for b in batches)


async def test_a_caller_cancelled_while_waiting_does_not_upset_the_others(
    worker: SignatureWorker,
) -> None:
    await started(worker)
    doomed = asyncio.ensure_future(worker.holds([GOOD] * 50))
    others = asyncio.ensure_future(worker.holds(CASES))
    await asyncio.sleep(0)
    doomed.cancel()
    assert await others == EXPECTED
    assert await worker.holds(CASES) == EXPECTED


async def test_a_dead_child_is_replaced_and_no_check_is_lost_or_wrong(
    worker: SignatureWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    await started(worker)
    monkeypatch.setattr(signature_worker, "RESTART_PAUSE_SECONDS", 0.0)
    process = worker._process
    assert process is not None
    in_flight = asyncio.ensure_future(worker.holds(CASES * 20))
    await asyncio.sleep(0)
    process.kill()
    async with asyncio.timeout(30):  # a check the dead child took must not be left unanswered
        assert await in_flight == EXPECTED * 20
    # Answered here meanwhile; the next checks start a new child.
    async with asyncio.timeout(30):
        while not worker.running:
            assert await worker.holds(CASES) == EXPECTED
            await asyncio.sleep(0.01)
    assert worker._process is not process
    assert await worker.holds(CASES) == EXPECTED


async def test_after_a_failure_the_child_is_not_restarted_before_the_pause(
    worker: SignatureWorker,
) -> None:
    await started(worker)
    process = worker._process
    assert process is not None
    process.kill()
    async with asyncio.timeout(30):
        while worker.running:  # noqa: ASYNC110 - the reader notices the death on its own
            await asyncio.sleep(0.01)
    for _ in range(5):
        assert await worker.holds(CASES) == EXPECTED
    assert not worker.running


async def test_close_ends_the_child(worker: SignatureWorker) -> None:
    await started(worker)
    process = worker._process
    assert process is not None
    await worker.close()
    assert process.returncode == 0
    # Closed: checks still answered, here.
    assert await worker.holds(CASES) == EXPECTED
    assert not worker.running


def test_the_child_gets_no_environment_but_the_path_to_pynacl(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PERMITNET_KEY_PASSPHRASE", "correct horse battery staple")
    environment = signature_worker._child_environment()
    assert list(environment) == ["PYTHONPATH"]
    assert "correct horse" not in repr(environment)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_child_ignores_ctrl_c_and_sigterm_and_ends_at_the_end_of_its_input(
    signum: signal.Signals,
) -> None:
    # Ctrl-C reaches the whole process group; a service manager's stop (systemd's default
    # KillMode) sends SIGTERM to every process of the service. The node ends the child.
    child = subprocess.Popen(
        [sys.executable, "-S", str(CHILD_SCRIPT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=signature_worker._child_environment(),
    )
    assert child.stdin is not None
    assert child.stdout is not None
    child.stdin.write(encode_frame(CASES))
    child.stdin.flush()
    head = child.stdout.read(4)
    assert signature_child.answer(encode_frame(CASES)[4:]) == child.stdout.read(
        int.from_bytes(head, "big")
    )
    child.send_signal(signum)
    child.stdin.write(encode_frame([GOOD]))
    child.stdin.flush()
    assert child.stdout.read(4 + 5) == (5).to_bytes(4, "big") + b"\x00\x00\x00\x01\x01"
    child.stdin.close()
    assert child.wait(timeout=30) == 0


def test_a_malformed_frame_is_refused_not_half_read() -> None:
    body = encode_frame([GOOD])[4:]
    with pytest.raises(ValueError, match="malformed"):
        signature_child.answer(body + b"extra")
    with pytest.raises(ValueError, match="malformed"):
        signature_child.answer(body[:-1])


def test_serve_answers_each_frame_and_stops_at_a_cut_frame() -> None:
    frames = encode_frame(CASES) + encode_frame([GOOD])
    out = io.BytesIO()
    signature_child.serve(io.BytesIO(frames + encode_frame([GOOD])[:-3]), out)
    expected_first = signature_child.answer(encode_frame(CASES)[4:])
    expected_second = signature_child.answer(encode_frame([GOOD])[4:])
    assert out.getvalue() == (
        len(expected_first).to_bytes(4, "big")
        + expected_first
        + len(expected_second).to_bytes(4, "big")
        + expected_second
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.binary(max_size=300),
            st.booleans(),
            st.sampled_from(["none", "signature", "message", "key"]),
        ),
        max_size=8,
    )
)
def test_child_answers_equal_in_thread_answers(
    items: list[tuple[bytes, bool, str]],
) -> None:
    checks = []
    for payload, other_signer, damage in items:
        made = check(payload, seed=OTHER_SEED if other_signer else SEED, key_seed=SEED)
        if damage == "signature":
            made = Ed25519Check(made.public_key, bytes(64), made.message)
        elif damage == "message":
            made = Ed25519Check(made.public_key, made.signature, made.message[:-1])
        elif damage == "key":
            made = Ed25519Check(os.urandom(32), made.signature, made.message)
        checks.append(made)
    answer = signature_child.answer(encode_frame(checks)[4:])
    assert answer[:4] == len(checks).to_bytes(4, "big")
    assert [b == 1 for b in answer[4:]] == [c.holds() for c in checks]


LYING_CHILD = """
import sys
head = sys.stdin.buffer.read(4)
body = sys.stdin.buffer.read(int.from_bytes(head, "big"))
count = int.from_bytes(body[:4], "big")
reply = count.to_bytes(4, "big") + bytes([2]) * count
sys.stdout.buffer.write(len(reply).to_bytes(4, "big") + reply)
sys.stdout.buffer.flush()
sys.stdin.buffer.read()
"""


async def test_an_answer_that_is_not_0_or_1_ends_the_child_and_is_not_believed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "lying_child.py"
    script.write_text(LYING_CHILD)
    monkeypatch.setattr(signature_worker, "CHILD_SCRIPT", script)
    worker = await started(SignatureWorker())
    try:
        async with asyncio.timeout(30):
            assert await worker.holds(CASES) == EXPECTED  # answered here instead
        assert worker.checked_in_child == 0
        assert not worker.running
    finally:
        await worker.close()


async def test_a_child_that_keeps_failing_is_given_up_and_checks_stay_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    script = tmp_path / "dying_child.py"
    script.write_text("raise SystemExit(3)\n")
    monkeypatch.setattr(signature_worker, "CHILD_SCRIPT", script)
    monkeypatch.setattr(signature_worker, "RESTART_PAUSE_SECONDS", 0.0)
    worker = SignatureWorker()
    try:
        async with asyncio.timeout(60):
            while "from now on" not in caplog.text:
                assert await worker.holds(CASES) == EXPECTED
                await asyncio.sleep(0.01)
        starts = worker.checked_in_thread
        for _ in range(20):
            assert await worker.holds(CASES) == EXPECTED
            await asyncio.sleep(0)
        assert worker.checked_in_thread == starts + 20 * len(CASES)
        assert not worker.running
        assert worker._starting is None or worker._starting.done()
    finally:
        await worker.close()
