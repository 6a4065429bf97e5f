"""The registry data directory's shared core: the database, the state, audited commits."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Final

from permitnet.protocol.errors import ProtocolError
from permitnet.protocol.registry_records import Record, decode_record, encode_record
from permitnet.protocol.registry_root import RootMetadata
from permitnet.protocol.registry_view import RegistryState, fold
from permitnet.registry.errors import OperationError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    from permitnet.registry.store import RegistryStore

__all__ = [
    "DB_FILE",
    "DEFAULT_EXPIRY_SECONDS",
    "DELTA_WINDOW",
    "PUBLIC_ACTOR",
    "SNAPSHOT_KEY_FILE",
    "RegistryBase",
]

DB_FILE: Final = "registry.sqlite"
SNAPSHOT_KEY_FILE: Final = "snapshot.key"
DEFAULT_EXPIRY_SECONDS: Final = 7 * 86_400
#: Deltas are served (and exported) from at most this many versions back; older clients
#: fetch a snapshot.
DELTA_WINDOW: Final = 100
#: The actor of key requests received on the public endpoint.
PUBLIC_ACTOR: Final = "public"
_log = logging.getLogger(__name__)


class RegistryBase:
    """An open registry data directory: its database, snapshot key and folded state."""

    def __init__(self, directory: Path, store: RegistryStore, snapshot_seed: bytes) -> None:
        self.directory = directory
        self.store = store
        self._seed = snapshot_seed
        records = store.records()
        self.state: RegistryState = fold(decode_record(r) for r in records)
        #: How many log records ``state`` folds.
        self._folded = len(records)

    def close(self) -> None:
        """Close the database."""
        self.store.close()

    @property
    def root(self) -> RootMetadata:
        """The newest root metadata."""
        return RootMetadata.verify_signed(self.store.root())

    @contextlib.contextmanager
    def _audited(
        self, actor: str, now: int, action: str, detail: dict[str, object]
    ) -> Iterator[None]:
        """Audit a refused operation (a successful one audits inside its transaction).

        Refused anonymous submissions are only logged: auditing them would let anyone on the
        network grow the database.
        """
        try:
            self._catch_up()
            yield
        except (OperationError, ProtocolError) as e:
            if actor == PUBLIC_ACTOR:
                _log.warning("refused %s from the public endpoint: %s", action, e)
                raise
            with self.store.transaction() as db:
                self.store.audit(
                    db,
                    at=now,
                    actor=actor,
                    action=f"{action} refused",
                    detail={**detail, "error": str(e)},
                )
            raise

    def _commit(
        self,
        records: Sequence[Record],
        *,
        actor: str,
        now: int,
        action: str,
        detail: dict[str, object],
    ) -> None:
        with self.store.transaction() as db:
            self._catch_up()
            state = fold(records, self.state)  # raises RecordError: nothing is written
            self.store.append(db, [encode_record(r) for r in records], now)
            self.store.audit(db, at=now, actor=actor, action=action, detail=detail)
        self._folded_as(state, len(records))

    def _catch_up(self) -> None:
        """Fold the records another process appended since this one last read the log.

        The CLI may change the registry while ``serve`` runs from the same directory (a cron
        ``publish``, an operator's ``add-country``); each operation starts from the whole log,
        and each commit checks its records against it again inside its write transaction,
        where no other process can append.
        """
        size = self.store.log_size()
        if size != self._folded:
            tail = self.store.records_from(self._folded, size)
            self.state = fold((decode_record(r) for r in tail), self.state)
            self._folded = size

    def _folded_as(self, state: RegistryState, appended: int) -> None:
        """Take ``state`` after committing ``appended`` records folded into it."""
        self.state = state
        self._folded += appended
