"""Registry operations on a real data directory: keys, estimates, publication, root, audit."""

from __future__ import annotations

import hashlib
import sqlite3
from typing import TYPE_CHECKING

import pytest

from permitnet.protocol.cose import key_id, public_key_from_seed
from permitnet.protocol.errors import ProtocolError
from permitnet.protocol.registry_client import TrustedRegistry
from permitnet.protocol.registry_errors import RecordError, RootError, SignerError
from permitnet.protocol.registry_requests import (
    build_enrollment_request,
    build_revocation_request,
    build_rotation_request,
)
from permitnet.registry.errors import (
    ConflictError,
    NotFoundError,
    OperationError,
    RegistryServerError,
    StorageError,
    UnauthorizedError,
)
from permitnet.registry.keys import read_seed
from permitnet.registry.service import Registry

if TYPE_CHECKING:
    from pathlib import Path

    from permitnet.protocol.registry_records import EstimateKind

T0 = 1_780_000_000
OPS = "cli:test"


def seed(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


def kid_of(name: str) -> bytes:
    return key_id(public_key_from_seed(seed(name)))


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    reg = Registry.init(
        tmp_path / "reg",
        root_keys_dir=tmp_path / "offline",
        root_keys=3,
        threshold=2,
        now=T0,
        actor=OPS,
    )
    reg.set_country(
        "DE", authority="BfArM", endpoints=["https://de.example"], contact="", actor=OPS, now=T0
    )
    reg.set_country("FR", authority="ANSM", endpoints=[], contact="", actor=OPS, now=T0)
    return reg


def enroll(reg: Registry, name: str, country: str = "DE") -> None:
    raw = build_enrollment_request(seed(name), country=country, valid_from=T0, requested_at=T0)
    row = reg.submit_key_request(raw, actor="public", now=T0)
    reg.approve_key_request(
        row.id, fingerprint=kid_of(name).hex(), overlap_seconds=3600, actor=OPS, now=T0
    )


def test_init_keeps_root_keys_out_of_the_data_directory(tmp_path: Path) -> None:
    with pytest.raises(OperationError, match="offline"):
        Registry.init(
            tmp_path / "reg",
            root_keys_dir=tmp_path / "reg" / "keys",
            root_keys=3,
            threshold=2,
            now=T0,
            actor=OPS,
        )
    with pytest.raises(OperationError):
        Registry.init(
            tmp_path / "r2",
            root_keys_dir=tmp_path / "k",
            root_keys=2,
            threshold=3,
            now=T0,
            actor=OPS,
        )


def test_init_refuses_an_existing_registry(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="already exists"):
        Registry.init(
            tmp_path / "reg",
            root_keys_dir=tmp_path / "k2",
            root_keys=1,
            threshold=1,
            now=T0,
            actor=OPS,
        )


def test_open_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="registry init"):
        Registry.open(tmp_path / "nothing")


def test_country_name_comes_from_pycountry(registry: Registry) -> None:
    assert registry.state.countries["DE"].name == "Germany"
    with pytest.raises(RecordError, match="ISO 3166"):
        registry.set_country("XK", authority="x", endpoints=[], contact="", actor=OPS, now=T0)
    with pytest.raises(RecordError, match="http"):
        registry.set_country(
            "IN", authority="x", endpoints=["ftp://x"], contact="", actor=OPS, now=T0
        )


def test_enrollment_needs_the_confirmed_fingerprint(registry: Registry) -> None:
    raw = build_enrollment_request(seed("de-1"), country="DE", valid_from=T0, requested_at=T0)
    row = registry.submit_key_request(raw, actor="public", now=T0)
    with pytest.raises(OperationError, match="fingerprint"):
        registry.approve_key_request(row.id, fingerprint=None, overlap_seconds=0, actor=OPS, now=T0)
    with pytest.raises(OperationError, match="does not match"):
        registry.approve_key_request(
            row.id, fingerprint="00" * 16, overlap_seconds=0, actor=OPS, now=T0
        )
    keys = registry.approve_key_request(
        row.id, fingerprint=kid_of("de-1").hex(), overlap_seconds=0, actor=OPS, now=T0
    )
    assert [k.status for k in keys] == ["active"]
    with pytest.raises(ConflictError, match="already approved"):
        registry.approve_key_request(
            row.id, fingerprint=kid_of("de-1").hex(), overlap_seconds=0, actor=OPS, now=T0
        )


BAD_REQUESTS = {
    "not CBOR": b"\x00garbage",
    "signed by another key than enrolled": build_rotation_request(
        seed("nobody"), seed("de-2"), country="DE", valid_from=T0, requested_at=T0
    ),
    "revocation by an unknown key": build_revocation_request(
        seed("nobody"),
        country="DE",
        kid=b"\x01" * 16,
        compromised_at=T0,
        reason="x",
        requested_at=T0,
    ),
    "for an unregistered country": build_enrollment_request(
        seed("in-1"), country="IN", valid_from=T0, requested_at=T0
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_key_requests_are_refused_and_audited(registry: Registry, case: str) -> None:
    with pytest.raises((ProtocolError, RegistryServerError)):
        registry.submit_key_request(BAD_REQUESTS[case], actor="cli:desk", now=T0)
    assert registry.store.requests() == []
    assert registry.store.audit_rows(1)[0].action == "submit-key-request refused"
    # From the anonymous public endpoint a refusal is logged, not written to the database.
    rows = len(registry.store.audit_rows(1000))
    with pytest.raises((ProtocolError, RegistryServerError)):
        registry.submit_key_request(BAD_REQUESTS[case], actor="public", now=T0)
    assert len(registry.store.audit_rows(1000)) == rows


def test_rotation_signed_by_the_current_key_retires_it(registry: Registry) -> None:
    enroll(registry, "de-1")
    raw = build_rotation_request(
        seed("de-1"), seed("de-2"), country="DE", valid_from=T0 + 100, requested_at=T0
    )
    row = registry.submit_key_request(raw, actor="public", now=T0)
    keys = registry.approve_key_request(
        row.id, fingerprint=None, overlap_seconds=3600, actor=OPS, now=T0
    )
    assert {(k.kid, k.status) for k in keys} == {
        (kid_of("de-2"), "active"),
        (kid_of("de-1"), "retired"),
    }
    assert registry.state.keys[kid_of("de-1")].valid_until == T0 + 100 + 3600


def test_rotation_signed_by_another_countrys_key_is_refused(registry: Registry) -> None:
    enroll(registry, "fr-1", "FR")
    raw = build_rotation_request(
        seed("fr-1"), seed("de-2"), country="DE", valid_from=T0, requested_at=T0
    )
    with pytest.raises(SignerError, match="belongs to FR"):
        registry.submit_key_request(raw, actor="public", now=T0)


def test_country_revokes_its_own_key_with_another_of_its_keys(registry: Registry) -> None:
    enroll(registry, "de-1")
    enroll(registry, "de-2")
    raw = build_revocation_request(
        seed("de-2"),
        country="DE",
        kid=kid_of("de-1"),
        compromised_at=T0 + 5,
        reason="HSM lost",
        requested_at=T0,
    )
    row = registry.submit_key_request(raw, actor="public", now=T0)
    (key,) = registry.approve_key_request(
        row.id, fingerprint=None, overlap_seconds=0, actor=OPS, now=T0
    )
    assert (key.status, key.compromised_at, key.reason) == ("revoked", T0 + 5, "HSM lost")


def test_operator_revokes_any_key_and_it_stays_revoked(registry: Registry) -> None:
    enroll(registry, "de-1")
    registry.revoke_key(kid_of("de-1"), compromised_at=T0, reason="reported", actor=OPS, now=T0)
    with pytest.raises(NotFoundError):
        registry.revoke_key(b"\x00" * 16, compromised_at=T0, reason="x", actor=OPS, now=T0)
    # A later enrollment of the same key cannot bring it back.
    raw = build_enrollment_request(seed("de-1"), country="DE", valid_from=T0, requested_at=T0)
    row = registry.submit_key_request(raw, actor="public", now=T0)
    with pytest.raises(ConflictError, match="already registered"):
        registry.approve_key_request(
            row.id, fingerprint=kid_of("de-1").hex(), overlap_seconds=0, actor=OPS, now=T0
        )


def test_supplementary_estimates_are_numbered_and_add_up(registry: Registry) -> None:
    kinds: list[tuple[EstimateKind, int]] = [
        ("estimate", 1000),
        ("supplementary", 10),
        ("supplementary", 20),
    ]
    for kind, qty in kinds:
        registry.set_estimate(
            country="DE",
            substance="morphine",
            year=2026,
            quantity_mg=qty,
            kind=kind,
            effective="2026-01-01",
            actor=OPS,
            now=T0,
        )
    history = registry.state.estimates[("DE", "morphine", 2026)]
    assert [r.sequence for r in history] == [0, 1, 2]
    with pytest.raises(RecordError, match="not registered"):
        registry.set_estimate(
            country="IN",
            substance="morphine",
            year=2026,
            quantity_mg=1,
            kind="estimate",
            effective="2026-01-01",
            actor=OPS,
            now=T0,
        )
    with pytest.raises(RecordError):
        registry.set_estimate(
            country="DE",
            substance="Morphine!",
            year=2026,
            quantity_mg=1,
            kind="estimate",
            effective="2026-01-01",
            actor=OPS,
            now=T0,
        )


def test_publications_chain_and_a_client_follows_them(registry: Registry, tmp_path: Path) -> None:
    enroll(registry, "de-1")
    first = registry.publish(actor=OPS, now=T0)
    client = TrustedRegistry(registry.store.root(1))
    client.update_snapshot(first.snapshot, now=T0)
    registry.set_estimate(
        country="DE",
        substance="codeine",
        year=2026,
        quantity_mg=5,
        kind="estimate",
        effective="2026-01-01",
        actor=OPS,
        now=T0,
    )
    second = registry.publish(actor=OPS, now=T0 + 1)
    assert second.delta is not None
    view = client.update_delta(second.delta, now=T0 + 1)
    assert (view.version, view.balance_inputs("DE", "codeine", 2026)) == (2, (5, 0))
    assert registry.store.deltas_since(1) == [second.delta]


def test_root_rotation_needs_old_threshold_and_client_follows(
    registry: Registry, tmp_path: Path
) -> None:
    registry.publish(actor=OPS, now=T0)
    old = [read_seed(tmp_path / "offline" / f"root-{i}.key") for i in (1, 2, 3)]
    new = [seed(f"new-{i}") for i in range(3)]
    with pytest.raises(RootError, match="threshold"):
        registry.rotate_root(
            old_seeds=old[:1],
            new_seeds=new,
            threshold=2,
            rotate_snapshot_key=True,
            actor=OPS,
            now=T0,
        )
    assert registry.root.version == 1
    assert registry.store.audit_rows(1)[0].action == "rotate-root refused"
    registry.rotate_root(
        old_seeds=old[1:],
        new_seeds=new,
        threshold=2,
        rotate_snapshot_key=True,
        actor=OPS,
        now=T0 + 10,
    )
    files = sorted(p.name for p in (tmp_path / "reg").iterdir() if "key" in p.name)
    assert files == ["snapshot.key", "snapshot.key.v1"]
    assert read_seed(tmp_path / "reg" / "snapshot.key") != read_seed(
        tmp_path / "reg" / "snapshot.key.v1"
    )
    client = TrustedRegistry(registry.store.root(1))
    client.update_root(registry.store.root(2))
    latest = registry.store.latest_version()
    assert latest == 2
    view = client.update_snapshot(registry.store.artefact("snapshot", latest), now=T0 + 10)
    assert view.root_version == 2
    reopened = Registry.open(tmp_path / "reg")
    assert reopened.publish(actor=OPS, now=T0 + 20).version == 3


def test_tokens_are_stored_hashed_and_revocable(registry: Registry, tmp_path: Path) -> None:
    token = registry.add_token("ops-desk", actor=OPS, now=T0)
    assert registry.authenticate(token) == "token:ops-desk"
    database = (tmp_path / "reg" / "registry.sqlite").read_bytes()
    assert token.encode() not in database
    with pytest.raises(ConflictError):
        registry.add_token("ops-desk", actor=OPS, now=T0)
    registry.revoke_token("ops-desk", actor=OPS, now=T0)
    with pytest.raises(UnauthorizedError):
        registry.authenticate(token)
    with pytest.raises(NotFoundError):
        registry.revoke_token("ops-desk", actor=OPS, now=T0)


def test_every_change_is_audited_with_who_and_when(registry: Registry) -> None:
    registry.set_estimate(
        country="DE",
        substance="morphine",
        year=2026,
        quantity_mg=1,
        kind="estimate",
        effective="2026-01-01",
        actor="token:alice",
        now=T0 + 7,
    )
    row = registry.store.audit_rows(1)[0]
    assert (row.actor, row.action, row.at) == ("token:alice", "set-estimate", T0 + 7)
    assert row.detail["substance"] == "morphine"
    actions = [r.action for r in registry.store.audit_rows(100)]
    assert actions[-1] == "init"
    assert actions.count("set-country") == 2


def test_audit_log_is_hash_chained(registry: Registry, tmp_path: Path) -> None:
    assert registry.store.verify_audit() == 3  # init and two countries
    registry.close()
    database = sqlite3.connect(tmp_path / "reg" / "registry.sqlite")
    with database:
        database.execute("UPDATE audit SET actor = 'someone else' WHERE id = 2")
    reopened = Registry.open(tmp_path / "reg")
    with pytest.raises(StorageError, match="row 2 was altered"):
        reopened.store.verify_audit()
    with database:
        database.execute("UPDATE audit SET actor = 'cli:test' WHERE id = 2")
        database.execute("DELETE FROM audit WHERE id = 2")
    with pytest.raises(StorageError, match="row 2 is missing"):
        reopened.store.verify_audit()
    database.close()
    reopened.close()


def test_a_server_sees_what_the_cli_changed_in_the_same_directory(
    registry: Registry, tmp_path: Path
) -> None:
    # `serve` keeps one Registry open; the CLI opens its own on the same directory (a cron
    # publish, an operator's add-country). Each must start from the whole log.
    server = registry
    cli = Registry.open(tmp_path / "reg")
    try:
        cli.set_country("IT", authority="AIFA", endpoints=[], contact="", actor=OPS, now=T0)
        # The server enrols a key for the country the CLI added.
        enroll(server, "it-1", country="IT")
        assert kid_of("it-1") in server.state.keys
        # The CLI revokes it; the server must not let it sign a rotation afterwards.
        cli.revoke_key(kid_of("it-1"), compromised_at=T0, reason="lost", actor=OPS, now=T0 + 1)
        rotation = build_rotation_request(
            seed("it-1"), seed("it-2"), country="IT", valid_from=T0 + 2, requested_at=T0 + 2
        )
        with pytest.raises((RegistryServerError, ProtocolError)):
            server.submit_key_request(rotation, actor="public", now=T0 + 2)
        # Both see every record, and the log folds again from scratch to the same state.
        assert Registry.open(tmp_path / "reg").state == server.state == cli.state
    finally:
        cli.close()


def test_a_request_decided_elsewhere_cannot_be_decided_again(
    registry: Registry, tmp_path: Path
) -> None:
    raw = build_enrollment_request(seed("de-9"), country="DE", valid_from=T0, requested_at=T0)
    row = registry.submit_key_request(raw, actor="public", now=T0)
    other = Registry.open(tmp_path / "reg")
    try:
        other.reject_key_request(row.id, reason="not confirmed", actor=OPS, now=T0 + 1)
    finally:
        other.close()
    with pytest.raises(ConflictError, match="already rejected"):
        registry.approve_key_request(
            row.id, fingerprint=kid_of("de-9").hex(), overlap_seconds=0, actor=OPS, now=T0 + 2
        )
    assert kid_of("de-9") not in registry.state.keys


def test_publish_takes_the_snapshot_key_the_cli_rotated(registry: Registry, tmp_path: Path) -> None:
    registry.publish(actor=OPS, now=T0)
    cli = Registry.open(tmp_path / "reg")
    try:
        cli.rotate_root(
            old_seeds=[read_seed(tmp_path / "offline" / f"root-{i}.key") for i in (1, 2)],
            new_seeds=[seed(f"new-{i}") for i in range(3)],
            threshold=2,
            rotate_snapshot_key=True,
            actor=OPS,
            now=T0 + 10,
        )
    finally:
        cli.close()
    # The server still held the old snapshot key in memory.
    publication = registry.publish(actor=OPS, now=T0 + 20)
    client = TrustedRegistry(registry.store.root(1))
    client.update_root(registry.store.root(2))
    view = client.update_snapshot(
        registry.store.artefact("snapshot", publication.version), now=T0 + 20
    )
    assert view.root_version == 2
