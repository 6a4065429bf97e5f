"""The registry state a node consults: a verified, immutable view of the published facts.

A :class:`RegistryView` is only ever built by folding the records of a verified snapshot
(and of verified deltas after it), in log order; see :mod:`permitnet.protocol.registry_client`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import TypeVar, overload

from permitnet.protocol.registry_errors import (
    KeyNotValidError,
    KeyRevokedError,
    RecordError,
    UnknownKeyError,
    WrongCountryError,
)
from permitnet.protocol.registry_records import (
    CatalogueEdition,
    CountryRecord,
    Estimate,
    KeyRecord,
    Record,
)

__all__ = ["Layered", "RegistryState", "RegistryView", "fold"]

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")

_EstimateKey = tuple[str, str, int]
_AssessmentKey = tuple[str, str]


class Layered(MutableMapping[K, V]):
    """A mapping made of a large shared base and a small owned top layer.

    A delta adds a few hundred records to a state of tens of thousands: copying every dict
    for each delta would cost more than the delta itself. A child shares its parent's base
    (never mutated once shared) and copies only the top layer; :meth:`compacted` folds the
    top into a new base when it grows past an eighth of the base.
    """

    __slots__ = ("_base", "_top")

    def __init__(self, base: dict[K, V] | None = None, top: dict[K, V] | None = None) -> None:
        self._base: dict[K, V] = {} if base is None else base
        self._top: dict[K, V] = {} if top is None else top

    def __getitem__(self, key: K) -> V:
        try:
            return self._top[key]
        except KeyError:
            return self._base[key]

    @overload
    def get(self, key: K, /) -> V | None: ...
    @overload
    def get(self, key: K, /, default: V | D) -> V | D: ...
    def get(self, key: K, /, default: object = None) -> object:
        """Return the value for ``key``, else ``default`` (as :meth:`dict.get`)."""
        if key in self._top:
            return self._top[key]
        return self._base.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._top or key in self._base

    def __setitem__(self, key: K, value: V) -> None:
        self._top[key] = value

    def __delitem__(self, key: K) -> None:
        raise TypeError("the registry log only grows: a record is superseded, never deleted")

    def __iter__(self) -> Iterator[K]:
        yield from self._base
        yield from (k for k in self._top if k not in self._base)

    def __len__(self) -> int:
        return len(self._base) + sum(1 for k in self._top if k not in self._base)

    def __repr__(self) -> str:
        return f"Layered({len(self)} entries)"

    def child(self) -> Layered[K, V]:
        """Return a mapping equal to this one that can be extended without touching it."""
        return Layered(self._base, dict(self._top))

    def compacted(self) -> Layered[K, V]:
        """Return an equal mapping whose top layer is small relative to its base."""
        if len(self._top) <= max(1024, len(self._base) // 8):
            return self
        return Layered({**self._base, **self._top}, {})


@dataclass(slots=True)
class RegistryState:
    """The fold of log records; a view's state is never changed once the view is built."""

    countries: Layered[str, CountryRecord] = field(default_factory=Layered)
    keys: Layered[bytes, KeyRecord] = field(default_factory=Layered)
    estimates: Layered[_EstimateKey, tuple[Estimate, ...]] = field(default_factory=Layered)
    assessments: Layered[_AssessmentKey, tuple[Estimate, ...]] = field(default_factory=Layered)
    catalogue: CatalogueEdition | None = None

    def copy(self) -> RegistryState:
        """Return a copy that can be extended without touching this state."""
        return RegistryState(
            countries=self.countries.child(),
            keys=self.keys.child(),
            estimates=self.estimates.child(),
            assessments=self.assessments.child(),
            catalogue=self.catalogue,
        )

    def compacted(self) -> RegistryState:
        """Return an equal state with its layers compacted (see :class:`Layered`)."""
        return RegistryState(
            countries=self.countries.compacted(),
            keys=self.keys.compacted(),
            estimates=self.estimates.compacted(),
            assessments=self.assessments.compacted(),
            catalogue=self.catalogue,
        )

    def apply(self, record: Record) -> None:
        """Fold one record in, enforcing the transitions the registry allows.

        Raises:
            RecordError: the record refers to an unknown country, changes a key's country or
                public key, or brings a revoked key back.
        """
        if isinstance(record, CountryRecord):
            self.countries[record.code] = record
        elif isinstance(record, KeyRecord):
            self._apply_key(record)
        elif isinstance(record, Estimate):
            if record.country not in self.countries:
                raise RecordError(f"estimate for {record.country}, which is not registered")
            if record.kind == "assessment":
                akey = (record.country, record.substance)
                self.assessments[akey] = (*self.assessments.get(akey, ()), record)
            else:
                ekey = (record.country, record.substance, record.year)
                self.estimates[ekey] = (*self.estimates.get(ekey, ()), record)
        else:
            self.catalogue = record

    def _apply_key(self, record: KeyRecord) -> None:
        if record.country not in self.countries:
            raise RecordError(f"key for {record.country}, which is not registered")
        old = self.keys.get(record.kid)
        if old is not None:
            if old.country != record.country or old.public_key != record.public_key:
                raise RecordError(f"key {record.kid.hex()} cannot change country or public key")
            if old.status == "revoked" and record.status != "revoked":
                raise RecordError(f"key {record.kid.hex()} was revoked and cannot be reinstated")
        self.keys[record.kid] = record


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryView:
    """A verified registry snapshot: what a node trusts about keys, countries and estimates.

    Attributes:
        version: the snapshot version (only grows).
        issued_at: when the registry signed it (Unix seconds).
        expires_at: after this instant the data is stale (Unix seconds).
        root_version: the version of the root metadata it was signed under.
        log_size: how many records the transparency log held.
        log_root: the RFC 9162 root over them.
        log_compact: the right-edge subtree hashes, to extend the log with a delta.
    """

    version: int
    issued_at: int
    expires_at: int
    root_version: int
    log_size: int
    log_root: bytes
    log_compact: tuple[bytes, ...]
    state: RegistryState

    @property
    def catalogue(self) -> CatalogueEdition | None:
        """The substance catalogue edition in force, if published."""
        return self.state.catalogue

    @property
    def countries(self) -> Mapping[str, CountryRecord]:
        """Every participating country by ISO code."""
        return self.state.countries

    def country(self, code: str) -> CountryRecord | None:
        """Return the country with ISO code ``code``, or None."""
        return self.state.countries.get(code)

    def key(self, kid: bytes) -> KeyRecord | None:
        """Return the key with identifier ``kid``, or None."""
        return self.state.keys.get(kid)

    def keys_for(self, country: str) -> list[KeyRecord]:
        """Return every key listed for ``country``, in the order they were first logged."""
        return [k for k in self.state.keys.values() if k.country == country]

    def estimate_history(self, country: str, substance: str, year: int) -> tuple[Estimate, ...]:
        """Return every estimate and supplementary estimate published, in log order."""
        return self.state.estimates.get((country, substance, year), ())

    def assessment_history(self, country: str, substance: str) -> tuple[Estimate, ...]:
        """Return every assessment published for a psychotropic substance, in log order."""
        return self.state.assessments.get((country, substance), ())

    def assessment_at(self, country: str, substance: str, date: str) -> Estimate | None:
        """Return the assessment in force on ``date`` (YYYY-MM-DD), or None.

        The one in force is the latest effective on or before ``date``; of two with the same
        effective date, the one logged later.
        """
        best: Estimate | None = None
        for record in self.assessment_history(country, substance):
            if record.effective <= date and (best is None or record.effective >= best.effective):
                best = record
        return best

    def balance_inputs(self, country: str, substance: str, year: int) -> tuple[int | None, int]:
        """Return ``(estimate_mg, supplementary_mg_total)`` for a narcotic drug and year.

        The estimate is the latest annual estimate published (a revision replaces it); each
        supplementary estimate counts once, at its latest published figure. For a
        psychotropic substance with no estimates, the result is ``(assessment_mg, 0)`` with
        the assessment in force on 31 December of ``year``. ``(None, 0)`` when nothing is
        published: the caller decides what that means (no estimate, no import).
        """
        history = self.estimate_history(country, substance, year)
        if history:
            estimate: int | None = None
            supplementary: dict[int, int] = {}
            for record in history:
                if record.kind == "estimate":
                    estimate = record.quantity_mg
                else:
                    supplementary[record.sequence] = record.quantity_mg
            return estimate, sum(supplementary.values())
        assessment = self.assessment_at(country, substance, f"{year:04d}-12-31")
        return (None if assessment is None else assessment.quantity_mg), 0

    def check_signer(self, kid: bytes, issuer_country: str, signed_at: int) -> KeyRecord:
        """Return the key if it may sign for ``issuer_country`` at ``signed_at``.

        Raises:
            UnknownKeyError: the registry does not list ``kid``.
            WrongCountryError: the key belongs to another country.
            KeyNotValidError: ``signed_at`` is outside the key's validity period.
            KeyRevokedError: the key was revoked with a compromise time at or before
                ``signed_at``.
        """
        key = self.state.keys.get(kid)
        if key is None:
            raise UnknownKeyError(f"key {kid.hex()} is not in registry snapshot {self.version}")
        if key.country != issuer_country:
            raise WrongCountryError(
                f"key {kid.hex()} belongs to {key.country}, not to the issuer {issuer_country}"
            )
        if signed_at < key.valid_from:
            raise KeyNotValidError(
                f"key {kid.hex()} is valid from {key.valid_from}, document signed at {signed_at}"
            )
        if key.valid_until is not None and signed_at >= key.valid_until:
            raise KeyNotValidError(
                f"key {kid.hex()} ({key.status}) was valid until {key.valid_until}, "
                f"document signed at {signed_at}"
            )
        if key.compromised_at is not None and key.compromised_at <= signed_at:
            raise KeyRevokedError(
                f"key {kid.hex()} was revoked ({key.reason}) as compromised from "
                f"{key.compromised_at}; document signed at {signed_at}"
            )
        return key


def fold(records: Iterable[Record], state: RegistryState | None = None) -> RegistryState:
    """Fold ``records`` onto a copy of ``state`` (or onto an empty state).

    Raises:
        RecordError: a record is not an allowed transition.
    """
    result = RegistryState() if state is None else state.copy()
    for record in records:
        result.apply(record)
    return result.compacted()
