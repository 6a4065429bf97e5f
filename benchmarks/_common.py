"""Shared timing helper for the benchmarks: medians of bounded rounds, beside a raw machine limit.

Every figure a benchmark prints stands beside the raw limit it is measured against (raw PyNaCl
Ed25519 verify/s, raw sqlite3 inserts/s, ...), measured in the same run with rounds of the two
interleaved, so that the noise of a shared machine hits both alike; the ratio printed is the
median of the per-round ratios (docs/performance.md). Nothing here asserts a timing.

Usage::

    from _common import Bench

    bench = Bench(title="Protocol")
    bench.compare("verify1", lambda: verify1(msg, pk), limit=("raw verify", raw_verify))
    bench.print()
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Bench", "Row", "measure", "parse_args", "sample"]

#: Seconds one timed batch aims to take; short enough to interleave, long enough to time.
ROUND_SECONDS = 0.1


def _batch_size(fn: Callable[[], object], round_seconds: float) -> int:
    """Find how many calls of ``fn`` take about ``round_seconds`` (at least one call)."""
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= round_seconds / 4 or calls >= 1 << 24:
            return max(1, int(calls * round_seconds / max(elapsed, 1e-9)))
        calls *= 4


def _time_batch(fn: Callable[[], object], calls: int) -> float:
    """Return the calls per second of one batch."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return calls / (time.perf_counter() - start)


def sample(
    fns: list[Callable[[], object]],
    *,
    rounds: int = 7,
    round_seconds: float = ROUND_SECONDS,
    max_seconds: float = 10.0,
) -> list[list[float]]:
    """Return the calls/s of each function in each round, the rounds interleaved.

    Args:
        fns: the functions to time; round ``i`` of each runs before round ``i + 1`` of any.
        rounds: how many rounds to take.
        round_seconds: how long one round of one function aims to take.
        max_seconds: stop after this many seconds even if fewer rounds ran (at least one).
    """
    sizes = [_batch_size(fn, round_seconds) for fn in fns]
    samples: list[list[float]] = [[] for _ in fns]
    deadline = time.perf_counter() + max_seconds
    for _ in range(rounds):
        for fn, calls, rates in zip(fns, sizes, samples, strict=True):
            rates.append(_time_batch(fn, calls))
        if time.perf_counter() > deadline:
            break
    return samples


def measure(
    fns: list[Callable[[], object]],
    *,
    rounds: int = 7,
    round_seconds: float = ROUND_SECONDS,
    max_seconds: float = 10.0,
) -> list[float]:
    """Return the median calls/s of each function, their rounds interleaved (see sample)."""
    samples = sample(fns, rounds=rounds, round_seconds=round_seconds, max_seconds=max_seconds)
    return [statistics.median(rates) for rates in samples]


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One printed figure: an operation's rate beside its raw limit."""

    name: str
    per_second: float
    limit_name: str
    limit_per_second: float
    #: The median over rounds of (operation rate / limit rate) in the same round: steadier
    #: than the ratio of the medians when the machine's load changes during the run.
    ratio: float

    def line(self) -> str:
        """The row as one aligned line."""
        micros = 1e6 / self.per_second
        return (
            f"{self.name:<34} {self.per_second:>11,.0f}/s {micros:>9.1f} us   "
            f"{self.limit_name:<28} {self.limit_per_second:>11,.0f}/s {self.ratio:>7.1%}"
        )


@dataclass(slots=True, kw_only=True)
class Bench:
    """A benchmark run: rows of figures, each beside its raw limit, printed as a table."""

    title: str
    rounds: int = 7
    round_seconds: float = ROUND_SECONDS
    rows: list[Row] = field(default_factory=list)

    def compare(
        self,
        name: str,
        fn: Callable[[], object],
        *,
        limit: tuple[str, Callable[[], object]],
    ) -> Row:
        """Time ``fn`` and the raw limit ``limit`` = (name, function), interleaved; keep the row."""
        limit_name, limit_fn = limit
        rates, limit_rates = sample(
            [fn, limit_fn], rounds=self.rounds, round_seconds=self.round_seconds
        )
        row = Row(
            name=name,
            per_second=statistics.median(rates),
            limit_name=limit_name,
            limit_per_second=statistics.median(limit_rates),
            ratio=statistics.median(a / b for a, b in zip(rates, limit_rates, strict=True)),
        )
        self.rows.append(row)
        print(row.line(), flush=True)
        return row

    def header(self) -> None:
        """Print the title and the column names."""
        print(f"## {self.title}")
        print(
            f"{'operation':<34} {'rate':>13} {'per op':>12}   "
            f"{'raw limit (same run)':<28} {'limit rate':>13} {'ratio':>7}"
        )


def parse_args(description: str) -> argparse.Namespace:
    """The options every benchmark takes: ``--quick`` for a smoke run of a few seconds."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="few short rounds: checks the benchmark runs"
    )
    return parser.parse_args()
