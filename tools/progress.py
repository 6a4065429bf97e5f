"""Progress bars for long operator work: backup, restore, export and registry sync.

Bars come from tqdm (small, dependency-free, and it already knows to stay quiet when its output is
not a terminal, such as under systemd or in a cron job's log). They write to standard error, so
that a command's standard output stays clean for data (an export written to ``-``, JSON lists).
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from tqdm import tqdm

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

__all__ = ["progress_bar", "track"]

T = TypeVar("T")


def _enabled(quiet: bool) -> bool:
    # Only a person at a terminal benefits from a bar; logs would fill with carriage returns.
    return not quiet and sys.stderr.isatty()


@contextmanager
def progress_bar(
    description: str, *, unit: str = "pages", quiet: bool = False
) -> Iterator[Callable[[int, int], None]]:
    """Show a bar while a task reports (done, total) through the yielded callback.

    Args:
        description: what is being done, shown left of the bar.
        unit: what is counted (pages, documents).
        quiet: never show a bar (the ``--quiet`` option).

    Yields:
        A ``report(done, total)`` callback for the task to call as it advances.
    """
    bar = tqdm(desc=description, unit=unit, disable=not _enabled(quiet), file=sys.stderr, total=0)
    try:

        def report(done: int, total: int) -> None:
            if bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        yield report
    finally:
        bar.close()


def track(
    items: Iterable[T], description: str, *, total: int | None = None, quiet: bool = False
) -> Iterator[T]:
    """Iterate over ``items`` with a bar counting them.

    Args:
        items: what to iterate over.
        description: what is being done, shown left of the bar.
        total: how many items there are, when ``items`` cannot say.
        quiet: never show a bar.

    Yields:
        Each item in turn.
    """
    yield from tqdm(
        items,
        desc=description,
        total=total,
        unit="documents",
        disable=not _enabled(quiet),
        file=sys.stderr,
    )
