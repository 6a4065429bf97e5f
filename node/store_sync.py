"""Write transactions on a plain ``sqlite3`` connection, for :class:`permitnet.node.store.Store`.

:func:`write_on` is a whole transaction on the database thread (``Store.transact``);
:func:`write_here` begins one and runs its statements on the calling thread, the event loop's,
leaving the COMMIT (:func:`commit_on`) to the database thread (``Store.transact_here``, ADR
0016). Both roll back on any exception; neither announces anything: the store does that on
the loop once the COMMIT returned.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Concatenate, Final

if TYPE_CHECKING:
    from collections.abc import Callable

    from permitnet.node.store_exchange import P, T

__all__ = ["BUSY_TIMEOUT_MS", "SyncTx", "commit_on", "write_here", "write_on"]

#: How long a statement waits for another connection's write lock, on the database thread.
BUSY_TIMEOUT_MS: Final = 5000


@dataclass(slots=True)
class SyncTx:
    """A write transaction as :meth:`Store.transact` hands it to a function on its thread."""

    #: The plain ``sqlite3`` connection, inside the transaction.
    conn: sqlite3.Connection
    #: The transaction's clock reading, used for every timestamp it writes.
    now: int
    #: Event sequence numbers written, announced after commit (as ``Tx.new_events``).
    new_events: list[int] = field(default_factory=list)
    #: Whether outbox rows became due for delivery, announced after commit.
    made_outbox_due: bool = False


def write_on(
    conn: sqlite3.Connection,
    now: int,
    fn: Callable[Concatenate[SyncTx, P], T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> tuple[T, SyncTx]:
    """One write transaction on the database thread: BEGIN IMMEDIATE, ``fn``, COMMIT.

    Any exception rolls it back and propagates. Returns ``fn``'s result and the transaction,
    whose new events are announced once back on the loop.
    """
    conn.execute("BEGIN IMMEDIATE")
    result, tx = _run_begun(conn, now, fn, *args, **kwargs)
    return commit_on(conn, result, tx)


def write_here(
    conn: sqlite3.Connection,
    now: int,
    fn: Callable[Concatenate[SyncTx, P], T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> tuple[T, SyncTx] | None:
    """BEGIN IMMEDIATE and ``fn`` on this thread, if the write lock is free now; else None.

    Nothing is committed: :meth:`Store.transact_here` hands the COMMIT to the database thread.
    """
    if not _begin_now(conn):
        return None
    return _run_begun(conn, now, fn, *args, **kwargs)


def _run_begun(
    conn: sqlite3.Connection,
    now: int,
    fn: Callable[Concatenate[SyncTx, P], T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> tuple[T, SyncTx]:
    """``fn`` inside the transaction just begun; any exception rolls it back."""
    tx = SyncTx(conn=conn, now=now)
    try:
        return fn(tx, *args, **kwargs), tx
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _begin_now(conn: sqlite3.Connection) -> bool:
    """BEGIN IMMEDIATE if the write lock is free now; False, and nothing begun, if not."""
    conn.execute("PRAGMA busy_timeout=0")
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as e:
        if e.sqlite_errorcode in {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}:
            return False
        raise
    finally:
        # Once the write lock is held, a WAL transaction waits for no other connection.
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return True


def commit_on(conn: sqlite3.Connection, result: T, tx: SyncTx) -> tuple[T, SyncTx]:
    """COMMIT the open transaction (rolled back if that fails); return ``fn``'s result and it."""
    try:
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return result, tx
