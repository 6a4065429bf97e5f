"""The registry client state machine against an in-memory publisher: views, and the attack table."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from permitnet.protocol.cbor import encode_cbor
from permitnet.protocol.cose import key_id, public_key_from_seed, sign1
from permitnet.protocol.merkle import consistency_proof, leaf_hash
from permitnet.protocol.registry_client import TrustedRegistry, compare_heads, verify_head
from permitnet.protocol.registry_errors import (
    EquivocationError,
    ExpiredSnapshotError,
    KeyNotValidError,
    KeyRevokedError,
    LogInconsistencyError,
    MixAndMatchError,
    RecordError,
    RollbackError,
    RootError,
    SignerError,
    SplitViewError,
    UnknownKeyError,
    WrongCountryError,
)
from permitnet.protocol.registry_publish import PreviousHead, Publication, publish
from permitnet.protocol.registry_records import (
    CatalogueEdition,
    CountryRecord,
    Estimate,
    KeyRecord,
    Record,
    encode_record,
)
from permitnet.protocol.registry_root import RootMetadata, sign_root
from permitnet.protocol.registry_snapshot import DeltaPayload, SnapshotPayload, sign_payload
from permitnet.protocol.registry_view import Layered

if TYPE_CHECKING:
    from collections.abc import Callable

    from permitnet.protocol.errors import ProtocolError, RegistryError

T0 = 1_780_000_000
DAY = 86_400


def seed(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


def pub(name: str) -> bytes:
    return public_key_from_seed(seed(name))


ROOT_SEEDS = [seed(f"root-{i}") for i in range(3)]


def make_root(
    version: int, seeds: list[bytes], snapshot_key: str = "snap", threshold: int = 2
) -> RootMetadata:
    return RootMetadata(
        version=version,
        issued_at=T0,
        threshold=threshold,
        root_keys=tuple(public_key_from_seed(s) for s in seeds),
        snapshot_keys=(pub(snapshot_key),),
    )


def country(code: str) -> CountryRecord:
    return CountryRecord(
        code=code,
        name=code,
        authority=f"{code} authority",
        endpoints=(f"https://node.{code.lower()}.example",),
        contact="ops@example.org",
    )


def key(code: str, name: str, **changes: object) -> KeyRecord:
    fields: dict[str, object] = {
        "country": code,
        "kid": key_id(pub(name)),
        "public_key": pub(name),
        "valid_from": T0 - 100 * DAY,
        "valid_until": None,
        "status": "active",
    }
    fields.update(changes)
    return KeyRecord(**fields)  # type: ignore[arg-type]


@dataclass
class Sim:
    """A registry publisher in memory, like python-tuf's RepositorySimulator."""

    records: list[bytes] = field(default_factory=list)
    pubs: list[Publication] = field(default_factory=list)
    snapshot_seed: bytes = field(default_factory=lambda: seed("snap"))
    root_version: int = 1

    def add(self, *records: Record) -> None:
        self.records.extend(encode_record(r) for r in records)

    def publish(self, at: int = T0, expires_in: int = 7 * DAY) -> Publication:
        last = self.pubs[-1] if self.pubs else None
        previous = (
            None
            if last is None
            else PreviousHead(version=last.version, log_size=last.log_size, log_root=last.log_root)
        )
        publication = publish(
            records=self.records,
            previous=previous,
            issued_at=at,
            expires_at=at + expires_in,
            root_version=self.root_version,
            seed=self.snapshot_seed,
        )
        self.pubs.append(publication)
        return publication


PINNED = sign_root(make_root(1, ROOT_SEEDS), ROOT_SEEDS[:2])


def base_sim() -> Sim:
    sim = Sim()
    sim.add(
        country("DE"),
        country("FR"),
        key("DE", "de-1"),
        key("FR", "fr-1"),
        Estimate(
            country="DE",
            substance="morphine",
            year=2026,
            quantity_mg=1_000_000,
            kind="estimate",
            effective="2026-01-01",
        ),
        Estimate(
            country="DE",
            substance="morphine",
            year=2026,
            quantity_mg=50_000,
            kind="supplementary",
            effective="2026-03-01",
            sequence=1,
        ),
        Estimate(
            country="FR",
            substance="diazepam",
            year=2025,
            quantity_mg=7_000,
            kind="assessment",
            effective="2025-06-01",
        ),
        CatalogueEdition(edition="2026.1", digest=b"\x07" * 32),
    )
    sim.publish()
    return sim


def test_full_snapshot_gives_a_view() -> None:
    sim = base_sim()
    client = TrustedRegistry(PINNED)
    view = client.update_snapshot(sim.pubs[0].snapshot, now=T0)
    assert (view.version, view.log_size, view.root_version) == (1, 8, 1)
    assert view.country("DE") is not None
    assert view.country("IN") is None
    assert [k.kid for k in view.keys_for("DE")] == [key_id(pub("de-1"))]
    assert view.balance_inputs("DE", "morphine", 2026) == (1_000_000, 50_000)
    assert view.balance_inputs("FR", "diazepam", 2026) == (7_000, 0)
    assert view.balance_inputs("FR", "diazepam", 2024) == (None, 0)
    assert view.balance_inputs("DE", "codeine", 2026) == (None, 0)
    assert view.catalogue == CatalogueEdition(edition="2026.1", digest=b"\x07" * 32)


def test_delta_revises_estimates_and_revokes_keys() -> None:
    sim = base_sim()
    client = TrustedRegistry(PINNED)
    before = client.update_snapshot(sim.pubs[0].snapshot, now=T0)
    sim.add(
        Estimate(
            country="DE",
            substance="morphine",
            year=2026,
            quantity_mg=900_000,
            kind="estimate",
            effective="2026-02-01",
        ),
        Estimate(
            country="DE",
            substance="morphine",
            year=2026,
            quantity_mg=60_000,
            kind="supplementary",
            effective="2026-03-02",
            sequence=1,
        ),
        Estimate(
            country="DE",
            substance="morphine",
            year=2026,
            quantity_mg=1_000,
            kind="supplementary",
            effective="2026-04-01",
            sequence=2,
        ),
        key("DE", "de-1", status="revoked", compromised_at=T0 + 10, reason="laptop stolen"),
    )
    delta = sim.publish(at=T0 + DAY).delta
    assert delta is not None
    view = client.update_delta(delta, now=T0 + DAY)
    assert view.version == 2
    assert view.balance_inputs("DE", "morphine", 2026) == (900_000, 61_000)
    assert len(view.estimate_history("DE", "morphine", 2026)) == 5
    kid = key_id(pub("de-1"))
    assert view.check_signer(kid, "DE", T0 + 9).kid == kid
    with pytest.raises(KeyRevokedError, match="laptop stolen"):
        view.check_signer(kid, "DE", T0 + 10)
    # The view held before the delta is unchanged (the new one shares its base layer).
    assert before.balance_inputs("DE", "morphine", 2026) == (1_000_000, 50_000)
    assert before.key(kid) == key("DE", "de-1")
    assert len(before.estimate_history("DE", "morphine", 2026)) == 2
    # The delta result equals what a fresh client gets from the full snapshot.
    fresh = TrustedRegistry(PINNED).update_snapshot(sim.pubs[1].snapshot, now=T0 + DAY)
    assert fresh.state == view.state
    assert fresh.log_compact == view.log_compact


SIGNER_CASES: dict[str, tuple[bytes, str, int, type[RegistryError]]] = {
    "unknown key": (key_id(pub("nobody")), "DE", T0, UnknownKeyError),
    "key of another country": (key_id(pub("fr-1")), "DE", T0, WrongCountryError),
    "before valid_from": (key_id(pub("de-1")), "DE", T0 - 101 * DAY, KeyNotValidError),
}


@pytest.mark.parametrize("case", sorted(SIGNER_CASES))
def test_check_signer_refusals(case: str) -> None:
    kid, issuer, signed_at, error = SIGNER_CASES[case]
    view = TrustedRegistry(PINNED).update_snapshot(base_sim().pubs[0].snapshot, now=T0)
    with pytest.raises(error):
        view.check_signer(kid, issuer, signed_at)


def test_retired_key_valid_only_before_valid_until() -> None:
    sim = base_sim()
    sim.add(key("DE", "de-1", status="retired", valid_until=T0))
    sim.publish()
    view = TrustedRegistry(PINNED).update_snapshot(sim.pubs[1].snapshot, now=T0)
    view.check_signer(key_id(pub("de-1")), "DE", T0 - 1)
    with pytest.raises(KeyNotValidError):
        view.check_signer(key_id(pub("de-1")), "DE", T0)


# ---------------------------------------------------------------- the attack table


def _forked_sim() -> Sim:
    sim = base_sim()
    sim.records[2] = encode_record(key("DE", "attacker"))  # rewrite history
    sim.pubs.clear()
    sim.publish()
    sim.add(country("IN"))
    sim.pubs[-1] = publish(
        records=sim.records,
        previous=None,
        issued_at=T0,
        expires_at=T0 + DAY,
        root_version=1,
        seed=sim.snapshot_seed,
    )
    return sim


def _resign_snapshot(
    raw_records: list[bytes],
    *,
    version: int,
    log_root: bytes | None = None,
    root_version: int = 1,
    signer: str = "snap",
    expires: int = T0 + DAY,
) -> bytes:
    from permitnet.protocol.merkle import root_hash

    payload = SnapshotPayload(
        version=version,
        issued_at=T0,
        expires_at=expires,
        root_version=root_version,
        log_size=len(raw_records),
        log_root=log_root or root_hash([leaf_hash(r) for r in raw_records]),
        records=tuple(raw_records),
    )
    return sign_payload(payload, seed(signer))


def attack_rollback(client: TrustedRegistry, sim: Sim) -> None:
    client.update_snapshot(sim.pubs[0].snapshot, now=T0)


def attack_freeze(client: TrustedRegistry, sim: Sim) -> None:
    sim.add(country("IN"))
    client.update_snapshot(sim.publish(at=T0 - 10 * DAY, expires_in=DAY).snapshot, now=T0 + DAY)


def attack_wrong_signer(client: TrustedRegistry, sim: Sim) -> None:
    sim.add(country("IN"))
    sim.snapshot_seed = seed("not the snapshot key")
    client.update_snapshot(sim.publish(at=T0 + DAY).snapshot, now=T0 + DAY)


def attack_root_key_signs_snapshot(client: TrustedRegistry, sim: Sim) -> None:
    sim.add(country("IN"))
    sim.snapshot_seed = ROOT_SEEDS[0]
    client.update_snapshot(sim.publish(at=T0 + DAY).snapshot, now=T0 + DAY)


def attack_delta_on_wrong_base(client: TrustedRegistry, sim: Sim) -> None:
    sim.add(country("IN"))
    sim.publish(at=T0 + DAY)
    sim.add(country("JP"))
    delta = sim.publish(at=T0 + 2 * DAY).delta  # 3 after 2, but the client holds 2
    assert delta is not None
    client.update_delta(delta, now=T0 + 2 * DAY)


def attack_delta_forged_base_head(client: TrustedRegistry, sim: Sim) -> None:
    payload = DeltaPayload(
        base_version=2,
        base_log_size=2,
        base_log_root=b"\x00" * 32,
        version=3,
        issued_at=T0,
        expires_at=T0 + DAY,
        root_version=1,
        log_size=3,
        log_root=b"\x01" * 32,
        records=(encode_record(country("IN")),),
    )
    client.update_delta(sign_payload(payload, seed("snap")), now=T0)


def attack_delta_wrong_records(client: TrustedRegistry, sim: Sim) -> None:
    head = sim.pubs[-1]
    payload = DeltaPayload(
        base_version=head.version,
        base_log_size=head.log_size,
        base_log_root=head.log_root,
        version=head.version + 1,
        issued_at=T0,
        expires_at=T0 + DAY,
        root_version=1,
        log_size=head.log_size + 1,
        log_root=b"\x01" * 32,
        records=(encode_record(country("IN")),),
    )
    client.update_delta(sign_payload(payload, seed("snap")), now=T0)


def attack_snapshot_under_future_root(client: TrustedRegistry, sim: Sim) -> None:
    client.update_snapshot(_resign_snapshot(sim.records, version=3, root_version=2), now=T0)


def attack_rewritten_log(client: TrustedRegistry, sim: Sim) -> None:
    records = list(sim.records)
    records[2] = encode_record(key("DE", "attacker"))
    records.append(encode_record(country("IN")))
    client.update_snapshot(_resign_snapshot(records, version=3), now=T0)


def attack_truncated_log(client: TrustedRegistry, sim: Sim) -> None:
    client.update_snapshot(_resign_snapshot(sim.records[:3], version=3), now=T0)


def attack_records_not_matching_root(client: TrustedRegistry, sim: Sim) -> None:
    client.update_snapshot(_resign_snapshot(sim.records, version=3, log_root=b"\x05" * 32), now=T0)


def attack_equivocating_version(client: TrustedRegistry, sim: Sim) -> None:
    records = [*sim.records, encode_record(country("IN"))]
    client.update_snapshot(_resign_snapshot(records, version=2), now=T0)


def attack_malformed_bytes(client: TrustedRegistry, sim: Sim) -> None:
    client.update_snapshot(b"\xa1\x01", now=T0)


def attack_tampered_snapshot(client: TrustedRegistry, sim: Sim) -> None:
    raw = bytearray(sim.pubs[-1].snapshot)
    raw[-100] ^= 1
    client.update_snapshot(bytes(raw), now=T0)


def attack_invalid_record(client: TrustedRegistry, sim: Sim) -> None:
    records = [*sim.records, encode_cbor({"type": "key", "country": "XX"})]
    client.update_snapshot(_resign_snapshot(records, version=3), now=T0)


def attack_unsigned_payload_type(client: TrustedRegistry, sim: Sim) -> None:
    raw = sign1(encode_cbor({"type": "permitnet-registry-head"}), seed("snap"), key_id(pub("snap")))
    client.update_snapshot(raw, now=T0)


ATTACKS: dict[str, tuple[Callable[[TrustedRegistry, Sim], None], type[ProtocolError]]] = {
    "rollback to an older snapshot": (attack_rollback, RollbackError),
    "freeze: expired snapshot": (attack_freeze, ExpiredSnapshotError),
    "wrong signer": (attack_wrong_signer, SignerError),
    "root key used as snapshot key": (attack_root_key_signs_snapshot, SignerError),
    "mix-and-match: delta for another base": (attack_delta_on_wrong_base, MixAndMatchError),
    "mix-and-match: forged base head": (attack_delta_forged_base_head, MixAndMatchError),
    "mix-and-match: snapshot under an untrusted root": (
        attack_snapshot_under_future_root,
        MixAndMatchError,
    ),
    "delta records do not give its root": (attack_delta_wrong_records, LogInconsistencyError),
    "rewritten log": (attack_rewritten_log, LogInconsistencyError),
    "truncated log": (attack_truncated_log, LogInconsistencyError),
    "records do not hash to the signed root": (
        attack_records_not_matching_root,
        LogInconsistencyError,
    ),
    "two snapshots with one version": (attack_equivocating_version, EquivocationError),
    "malformed bytes": (attack_malformed_bytes, SignerError),
    "tampered snapshot": (attack_tampered_snapshot, SignerError),
    "invalid record inside a signed snapshot": (attack_invalid_record, RecordError),
    "a head presented as a snapshot": (attack_unsigned_payload_type, RecordError),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_attack_is_refused_and_state_untouched(attack: str) -> None:
    run, error = ATTACKS[attack]
    sim = base_sim()
    sim.add(country("GB"))
    sim.publish()
    client = TrustedRegistry(PINNED)
    client.update_snapshot(sim.pubs[1].snapshot, now=T0)
    before = client.view
    with pytest.raises(error) as caught:
        run(client, sim)
    assert str(caught.value)
    assert client.view is before
    assert client.root.version == 1


# ---------------------------------------------------------------- root rotation


NEW_SEEDS = [seed(f"new-root-{i}") for i in range(3)]

ROOT_ROTATIONS: dict[str, tuple[Callable[[], bytes], type[ProtocolError] | None]] = {
    "valid: threshold of old and new": (
        lambda: sign_root(make_root(2, NEW_SEEDS, "snap-2"), ROOT_SEEDS[:2] + NEW_SEEDS[:2]),
        None,
    ),
    "only old keys sign": (
        lambda: sign_root(make_root(2, NEW_SEEDS, "snap-2"), ROOT_SEEDS),
        RootError,
    ),
    "only new keys sign": (
        lambda: sign_root(make_root(2, NEW_SEEDS, "snap-2"), NEW_SEEDS),
        RootError,
    ),
    "one old key short": (
        lambda: sign_root(make_root(2, NEW_SEEDS, "snap-2"), ROOT_SEEDS[:1] + NEW_SEEDS[:2]),
        RootError,
    ),
    "same key signing twice counts once": (
        lambda: sign_root(make_root(2, NEW_SEEDS), [ROOT_SEEDS[0], ROOT_SEEDS[0], *NEW_SEEDS]),
        RootError,
    ),
    "skips a version": (
        lambda: sign_root(make_root(3, NEW_SEEDS), ROOT_SEEDS + NEW_SEEDS),
        RootError,
    ),
    "replays version 1": (lambda: sign_root(make_root(1, ROOT_SEEDS), ROOT_SEEDS), RollbackError),
    "junk signature": (lambda: encode_cbor([b"junk"]), RootError),
    "not CBOR": (lambda: b"\xff\xff", RootError),
}


@pytest.mark.parametrize("case", sorted(ROOT_ROTATIONS))
def test_root_rotation(case: str) -> None:
    build, error = ROOT_ROTATIONS[case]
    sim = base_sim()
    client = TrustedRegistry(PINNED)
    view = client.update_snapshot(sim.pubs[0].snapshot, now=T0)
    if error is not None:
        with pytest.raises(error):
            client.update_root(build())
        assert client.root.version == 1
        assert client.view is view
        return
    client.update_root(build())
    assert client.root.version == 2
    # The old snapshot key is no longer trusted; the new one, under root v2, is.
    sim.root_version = 2
    sim.add(country("IN"))
    with pytest.raises(SignerError):
        client.update_snapshot(sim.publish(at=T0 + DAY).snapshot, now=T0 + DAY)
    sim.pubs.pop()
    sim.snapshot_seed = seed("snap-2")
    assert client.update_snapshot(sim.publish(at=T0 + DAY).snapshot, now=T0 + DAY).version == 2


def test_pinned_root_must_meet_its_threshold() -> None:
    with pytest.raises(RootError, match="threshold is 2"):
        TrustedRegistry(sign_root(make_root(1, ROOT_SEEDS), ROOT_SEEDS[:1]))


# ---------------------------------------------------------------- split view


def test_compare_heads_detects_split_view() -> None:
    sim = base_sim()
    root = TrustedRegistry(PINNED).root
    mine = verify_head(sim.pubs[0].head, root)
    sim.add(country("IN"))
    later = verify_head(sim.publish().head, root)
    hashes = [leaf_hash(r) for r in sim.records]
    compare_heads(mine, later, consistency_proof(mine.log_size, hashes))
    compare_heads(later, mine, consistency_proof(mine.log_size, hashes))
    compare_heads(mine, mine)
    forked = verify_head(_forked_sim().pubs[-1].head, root)
    with pytest.raises(SplitViewError, match="split view"):
        compare_heads(mine, forked, consistency_proof(mine.log_size, hashes))
    same_size_fork = verify_head(
        publish(
            records=[encode_record(country("JP"))] * mine.log_size,
            previous=None,
            issued_at=T0,
            expires_at=T0 + 1,
            root_version=1,
            seed=seed("snap"),
        ).head,
        root,
    )
    with pytest.raises(SplitViewError):
        compare_heads(mine, same_size_fork)


@given(
    st.lists(st.tuples(st.integers(0, 50), st.integers()), max_size=200),
    st.lists(st.tuples(st.integers(0, 50), st.integers()), max_size=200),
)
def test_layered_mapping_behaves_as_a_dict_and_children_are_isolated(
    first: list[tuple[int, int]], second: list[tuple[int, int]]
) -> None:
    parent: Layered[int, int] = Layered()
    reference: dict[int, int] = {}
    for k, v in first:
        parent[k] = v
        reference[k] = v
    parent = parent.compacted()
    assert dict(parent) == reference
    child = parent.child()
    expected = dict(reference)
    for k, v in second:
        child[k] = v
        expected[k] = v
    assert dict(child.compacted()) == expected == dict(child)
    assert len(child) == len(expected)
    assert dict(parent) == reference
    assert all(child.get(k) == v for k, v in expected.items())
    assert child.get(-1) is None
    assert -1 not in child
    with pytest.raises(TypeError):
        del child[0]


@given(
    st.lists(
        st.lists(
            st.tuples(
                st.sampled_from(["morphine", "codeine", "fentanyl"]),
                st.sampled_from(["estimate", "supplementary"]),
                st.integers(0, 10**9),
            ),
            max_size=6,
        ),
        min_size=1,
        max_size=6,
    )
)
def test_deltas_and_full_snapshots_give_the_same_view(
    publications: list[list[tuple[str, str, int]]],
) -> None:
    sim = base_sim()
    by_delta = TrustedRegistry(PINNED)
    by_delta.update_snapshot(sim.pubs[0].snapshot, now=T0)
    sequence = 1
    for batch in publications:
        for substance, kind, qty in batch:
            if kind == "supplementary":
                sequence += 1
            sim.add(
                Estimate(
                    country="FR",
                    substance=substance,
                    year=2026,
                    quantity_mg=qty,
                    kind="supplementary" if kind == "supplementary" else "estimate",
                    effective="2026-01-01",
                    sequence=sequence if kind == "supplementary" else 0,
                )
            )
        publication = sim.publish()
        assert publication.delta is not None
        view = by_delta.update_delta(publication.delta, now=T0)
        full = TrustedRegistry(PINNED).update_snapshot(publication.snapshot, now=T0)
        assert view.state == full.state
        assert (view.version, view.log_size, view.log_root, view.log_compact) == (
            full.version,
            full.log_size,
            full.log_root,
            full.log_compact,
        )
        for substance in ("morphine", "codeine", "fentanyl"):
            assert view.balance_inputs("FR", substance, 2026) == full.balance_inputs(
                "FR", substance, 2026
            )
