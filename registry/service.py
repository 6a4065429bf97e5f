"""The registry's operations on its data directory: what the CLI and the admin API both call.

A data directory holds ``registry.sqlite`` (the log, publications, roots, requests, tokens,
audit) and ``snapshot.key`` (the online snapshot-signing key). The root keys are never in it:
``init`` and ``rotate-root`` write and read them elsewhere (the operator's offline medium).

Every operation takes the actor (a token name, or ``cli:<user>``) and the clock, and writes
an audit row in the same transaction as its change; a refused operation is audited too.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Final

import pycountry

from permitnet.protocol.cose import key_id, public_key_from_seed
from permitnet.protocol.registry_publish import PreviousHead, Publication, publish
from permitnet.protocol.registry_records import (
    CatalogueEdition,
    CountryRecord,
    Estimate,
    EstimateKind,
    check_country,
)
from permitnet.protocol.registry_root import RootMetadata, sign_root
from permitnet.registry.base import (
    DB_FILE,
    DEFAULT_EXPIRY_SECONDS,
    PUBLIC_ACTOR,
    SNAPSHOT_KEY_FILE,
)
from permitnet.registry.errors import (
    OperationError,
    StorageError,
)
from permitnet.registry.key_ops import KeyOperations
from permitnet.registry.keys import read_seed, write_seed
from permitnet.registry.store import RegistryStore
from permitnet.registry.token_ops import TokenOperations

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

__all__ = [
    "DB_FILE",
    "DEFAULT_EXPIRY_SECONDS",
    "PUBLIC_ACTOR",
    "SNAPSHOTS_KEPT",
    "SNAPSHOT_KEY_FILE",
    "Registry",
]

#: How many of the latest full snapshots are stored (older ones are their log's prefix).
SNAPSHOTS_KEPT: Final = 3


class Registry(KeyOperations, TokenOperations):
    """An open registry data directory."""

    @classmethod
    def init(
        cls,
        directory: Path,
        *,
        root_keys_dir: Path,
        root_keys: int,
        threshold: int,
        now: int,
        actor: str,
        expiry_seconds: int = DEFAULT_EXPIRY_SECONDS,
    ) -> Registry:
        """Create a registry: root keys (written to ``root_keys_dir``), root v1, snapshot key.

        Raises:
            OperationError: bad key counts, or the root keys would land in the data directory.
            StorageError: the directory already holds a registry.
        """
        if not 1 <= threshold <= root_keys <= 32:
            raise OperationError("need 1 <= threshold <= number of root keys <= 32")
        directory, root_keys_dir = directory.resolve(), root_keys_dir.resolve()
        if root_keys_dir == directory or root_keys_dir.is_relative_to(directory):
            raise OperationError(
                "root keys must be kept offline, outside the served data directory"
            )
        if (directory / DB_FILE).exists():
            raise StorageError(f"{directory / DB_FILE} already exists: refusing to overwrite")
        directory.mkdir(parents=True, exist_ok=True)
        root_keys_dir.mkdir(parents=True, exist_ok=True)
        seeds = [secrets.token_bytes(32) for _ in range(root_keys)]
        snapshot_seed = secrets.token_bytes(32)
        # Keys first (each file created exclusively, so none is ever overwritten), the
        # database last: a failure leaves no registry whose root keys were never written.
        for number, seed in enumerate(seeds, start=1):
            write_seed(root_keys_dir / f"root-{number}.key", seed)
        write_seed(directory / SNAPSHOT_KEY_FILE, snapshot_seed)
        store = RegistryStore.create(directory / DB_FILE)
        root = RootMetadata(
            version=1,
            issued_at=now,
            threshold=threshold,
            root_keys=tuple(public_key_from_seed(s) for s in seeds),
            snapshot_keys=(public_key_from_seed(snapshot_seed),),
        )
        with store.transaction() as db:
            store.add_root(db, 1, sign_root(root, seeds))
            store.set_meta(db, "expiry_seconds", str(expiry_seconds))
            store.audit(
                db,
                at=now,
                actor=actor,
                action="init",
                detail={"root_keys": root_keys, "threshold": threshold},
            )
        return cls(directory, store, snapshot_seed)

    @classmethod
    def open(cls, directory: Path) -> Registry:
        """Open an existing registry data directory.

        Raises:
            StorageError: not a registry directory, or the snapshot key is unreadable.
        """
        store = RegistryStore.open(directory / DB_FILE)
        return cls(directory, store, read_seed(directory / SNAPSHOT_KEY_FILE))

    # ------------------------------------------------------------------ countries

    def set_country(
        self,
        code: str,
        *,
        authority: str,
        endpoints: Sequence[str],
        contact: str,
        actor: str,
        now: int,
    ) -> CountryRecord:
        """Add a participating country or update its authority, endpoints and contact.

        The name comes from pycountry, never from the operator.

        Raises:
            RecordError: an invalid code, authority or endpoint.
        """
        detail: dict[str, object] = {
            "country": code,
            "authority": authority,
            "endpoints": list(endpoints),
        }
        with self._audited(actor, now, "set-country", detail):
            country = pycountry.countries.get(alpha_2=check_country(code))
            assert country is not None  # check_country looked it up
            record = CountryRecord(
                code=code,
                name=str(getattr(country, "common_name", None) or country.name),
                authority=authority,
                endpoints=tuple(endpoints),
                contact=contact,
            )
            self._commit([record], actor=actor, now=now, action="set-country", detail=detail)
            return record

    # ------------------------------------------------------------------ estimates

    def set_estimate(
        self,
        *,
        country: str,
        substance: str,
        year: int,
        quantity_mg: int,
        kind: EstimateKind,
        effective: str,
        actor: str,
        now: int,
    ) -> Estimate:
        """Publish an estimate, a supplementary estimate (numbered in turn) or an assessment.

        Raises:
            RecordError: an invalid field, or the country is not registered.
        """
        detail: dict[str, object] = {
            "country": country,
            "substance": substance,
            "year": year,
            "quantity_mg": quantity_mg,
            "kind": kind,
            "effective": effective,
        }
        with self._audited(actor, now, f"set-{kind}", detail):
            sequence = 0
            if kind == "supplementary":
                history = self.state.estimates.get((country, substance, year), ())
                sequence = 1 + max((r.sequence for r in history), default=0)
            record = Estimate(
                country=country,
                substance=substance,
                year=year,
                quantity_mg=quantity_mg,
                kind=kind,
                effective=effective,
                sequence=sequence,
            )
            self._commit([record], actor=actor, now=now, action=f"set-{kind}", detail=detail)
            return record

    def set_catalogue(self, edition: str, digest: bytes, *, actor: str, now: int) -> None:
        """Publish the substance catalogue edition in force.

        Raises:
            RecordError: an invalid edition or digest.
        """
        detail: dict[str, object] = {"edition": edition, "digest": digest.hex()}
        with self._audited(actor, now, "set-catalogue", detail):
            record = CatalogueEdition(edition=edition, digest=digest)
            self._commit([record], actor=actor, now=now, action="set-catalogue", detail=detail)

    # ------------------------------------------------------------------ publication

    def publish(self, *, actor: str, now: int, expiry_seconds: int | None = None) -> Publication:
        """Sign and store the next snapshot, its delta and its head.

        Raises:
            StorageError: the snapshot key is not the one the newest root lists.
        """
        root = self.root
        if public_key_from_seed(self._seed) not in root.snapshot_keys:
            # Another process (the CLI's rotate-root beside ``serve``) may have rotated it.
            self._seed = read_seed(self.directory / SNAPSHOT_KEY_FILE)
        if public_key_from_seed(self._seed) not in root.snapshot_keys:
            raise StorageError(f"{SNAPSHOT_KEY_FILE} is not a snapshot key of root v{root.version}")
        expiry = expiry_seconds or int(
            self.store.get_meta("expiry_seconds") or DEFAULT_EXPIRY_SECONDS
        )
        latest = self.store.latest_version()
        previous = None
        if latest is not None:
            size, log_root = self.store.publication_head(latest)
            previous = PreviousHead(version=latest, log_size=size, log_root=log_root)
        publication = publish(
            records=self.store.records(),
            previous=previous,
            issued_at=now,
            expires_at=now + expiry,
            root_version=root.version,
            seed=self._seed,
        )
        with self.store.transaction() as db:
            self.store.add_publication(db, publication)
            self.store.prune_snapshots(db, publication.version - SNAPSHOTS_KEPT + 1)
            self.store.audit(
                db,
                at=now,
                actor=actor,
                action="publish",
                detail={
                    "version": publication.version,
                    "log_size": publication.log_size,
                    "expires_at": publication.expires_at,
                },
            )
        return publication

    def rotate_root(
        self,
        *,
        old_seeds: Sequence[bytes],
        new_seeds: Sequence[bytes],
        threshold: int,
        rotate_snapshot_key: bool,
        actor: str,
        now: int,
    ) -> RootMetadata:
        """Sign root ``v + 1`` with a threshold of the old and all the new root keys, then publish.

        Raises:
            RootError: the old or new keys do not reach their thresholds.
        """
        with self._audited(actor, now, "rotate-root", {"threshold": threshold}):
            old = self.root
            seed = secrets.token_bytes(32) if rotate_snapshot_key else self._seed
            new = RootMetadata(
                version=old.version + 1,
                issued_at=now,
                threshold=threshold,
                root_keys=tuple(public_key_from_seed(s) for s in new_seeds),
                snapshot_keys=(public_key_from_seed(seed),),
            )
            raw = sign_root(new, [*old_seeds, *new_seeds])
            RootMetadata.verify_signed(raw, trusted=old)
            key_file = self.directory / SNAPSHOT_KEY_FILE
            next_file = key_file.with_name(f"{SNAPSHOT_KEY_FILE}.next")
            if rotate_snapshot_key:
                # The new key is on disk before the root that names it is stored, and
                # swapped in only after: no failure leaves a root whose key is lost.
                next_file.unlink(missing_ok=True)
                write_seed(next_file, seed)
            try:
                with self.store.transaction() as db:
                    self.store.add_root(db, new.version, raw)
                    self.store.audit(
                        db,
                        at=now,
                        actor=actor,
                        action="rotate-root",
                        detail={
                            "version": new.version,
                            "threshold": threshold,
                            "snapshot_key": key_id(public_key_from_seed(seed)).hex(),
                        },
                    )
            except BaseException:
                next_file.unlink(missing_ok=True)
                raise
            if rotate_snapshot_key:
                key_file.replace(key_file.with_name(f"{SNAPSHOT_KEY_FILE}.v{old.version}"))
                next_file.replace(key_file)
                self._seed = seed
        self.publish(actor=actor, now=now)
        return new
