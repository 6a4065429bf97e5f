"""Registry at world scale: snapshot size, publish time, client verify (full and monthly delta).

About 200 countries with 3 keys each, and annual estimates or assessments for 150 substances
per country over 2 years (60,000 records), plus one supplementary estimate per country. A
typical monthly delta: one supplementary estimate per country, 10 key rotations, 5 country
updates. Each figure is printed beside the raw Ed25519 verify rate and SHA-256 rate measured
in the same run. Goal: applying the delta takes under 1/100 of verifying the full snapshot.

Run: .venv/bin/python benchmarks/bench_registry.py   (about 30-60 s)
"""

from __future__ import annotations

import hashlib
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import nacl.signing
import pycountry

from permitnet.protocol.cose import key_id, public_key_from_seed
from permitnet.protocol.registry_client import TrustedRegistry
from permitnet.protocol.registry_records import (
    CountryRecord,
    Estimate,
    EstimateKind,
    KeyRecord,
    Record,
    encode_record,
)
from permitnet.registry.service import Registry

if TYPE_CHECKING:
    from collections.abc import Callable

T0 = 1_780_000_000
OPS = "bench"
COUNTRIES = 200
KEYS = 3
SUBSTANCES = 150
YEARS = (2025, 2026)


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``fn`` over ``repeat`` runs, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def rate(fn: Callable[[], object], seconds: float = 0.5) -> float:
    """Operations per second of ``fn`` over about ``seconds``."""
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            fn()
        count += 100
    return count / (time.perf_counter() - start)


def seed(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def world() -> list[Record]:
    codes = sorted(c.alpha_2 for c in pycountry.countries)[:COUNTRIES]
    records: list[Record] = []
    for code in codes:
        records.append(
            CountryRecord(
                code=code,
                name=code,
                authority=f"{code} authority",
                endpoints=(f"https://permitnet.{code.lower()}.example",),
                contact=f"incb-desk@{code.lower()}.example",
            )
        )
        for k in range(KEYS):
            public = public_key_from_seed(seed(f"{code}-{k}"))
            records.append(
                KeyRecord(
                    country=code,
                    kid=key_id(public),
                    public_key=public,
                    valid_from=T0,
                    valid_until=None,
                    status="active",
                )
            )
    for year in YEARS:
        for code in codes:
            for s in range(SUBSTANCES):
                kind: EstimateKind = "estimate" if s < 100 else "assessment"
                records.append(
                    Estimate(
                        country=code,
                        substance=f"substance-{s:03d}",
                        year=year,
                        quantity_mg=1_000_000 + s,
                        kind=kind,
                        effective=f"{year}-01-01",
                    )
                )
    return records


def monthly_delta(codes: list[str]) -> list[Record]:
    records: list[Record] = [
        Estimate(
            country=code,
            substance="substance-001",
            year=2026,
            quantity_mg=5_000,
            kind="supplementary",
            effective="2026-06-01",
            sequence=1,
        )
        for code in codes
    ]
    for code in codes[:10]:
        old = public_key_from_seed(seed(f"{code}-0"))
        new = public_key_from_seed(seed(f"{code}-new"))
        records.append(
            KeyRecord(
                country=code,
                kid=key_id(new),
                public_key=new,
                valid_from=T0 + 30 * 86_400,
                valid_until=None,
                status="active",
            )
        )
        records.append(
            KeyRecord(
                country=code,
                kid=key_id(old),
                public_key=old,
                valid_from=T0,
                valid_until=T0 + 31 * 86_400,
                status="retired",
            )
        )
    records.extend(
        CountryRecord(
            code=code,
            name=code,
            authority=f"{code} authority (new)",
            endpoints=(f"https://permitnet2.{code.lower()}.example",),
            contact="",
        )
        for code in codes[:5]
    )
    return records


def main() -> None:
    signing = nacl.signing.SigningKey(seed("raw"))
    message = b"x" * 64
    signature = signing.sign(message).signature
    verify_key = signing.verify_key
    ed_rate = rate(lambda: verify_key.verify(message, signature))
    leaf = b"y" * 140
    sha_rate = rate(lambda: hashlib.sha256(leaf).digest())
    sha_mb = rate(lambda: hashlib.sha256(b"z" * 1_048_576).digest(), 0.3)
    print(
        f"machine: raw Ed25519 verify (PyNaCl) {ed_rate:,.0f}/s; SHA-256 of 140 B "
        f"{sha_rate:,.0f}/s; SHA-256 {sha_mb:,.0f} MB/s"
    )

    with tempfile.TemporaryDirectory() as tmp:
        reg = Registry.init(
            Path(tmp) / "reg",
            root_keys_dir=Path(tmp) / "keys",
            root_keys=3,
            threshold=2,
            now=T0,
            actor=OPS,
        )
        records = world()
        with reg.store.transaction() as db:
            reg.store.append(db, [encode_record(r) for r in records], T0)
        start = time.perf_counter()
        first = reg.publish(actor=OPS, now=T0)
        publish_s = time.perf_counter() - start
        pinned = reg.store.root(1)
        codes = sorted(c.alpha_2 for c in pycountry.countries)[:COUNTRIES]
        delta_records = monthly_delta(codes)
        with reg.store.transaction() as db:
            reg.store.append(db, [encode_record(r) for r in delta_records], T0 + 1)
        second = reg.publish(actor=OPS, now=T0 + 1)
        assert second.delta is not None
        reg.close()

    full_s = timed(lambda: TrustedRegistry(pinned).update_snapshot(first.snapshot, now=T0), 3)

    # The delta is applied to the same verified snapshot again and again, as a running node
    # applies each month's delta to the view it holds.
    client = TrustedRegistry(pinned)
    base_view = client.update_snapshot(first.snapshot, now=T0)
    delta_times: list[float] = []
    for _ in range(20):
        client._view = base_view  # back to version 1 for the next run
        start = time.perf_counter()
        view = client.update_delta(second.delta, now=T0 + 1)
        delta_times.append(time.perf_counter() - start)
        assert view.version == 2
    delta_s = statistics.median(delta_times)
    n = len(records)
    print(
        f"world: {COUNTRIES} countries x {KEYS} keys, {SUBSTANCES} substances x {len(YEARS)} "
        f"years: {n:,} records"
    )
    print(
        f"full snapshot: {len(first.snapshot) / 1e6:.2f} MB; publish {publish_s:.2f} s "
        f"(= {n / publish_s:,.0f} records/s; raw SHA-256 of the leaves alone "
        f"{n / sha_rate:.3f} s)"
    )
    print(
        f"client verify full snapshot: {full_s:.3f} s = {n / full_s:,.0f} records/s "
        f"(raw: 1 Ed25519 verify {1 / ed_rate * 1e3:.3f} ms + {n:,} leaf hashes "
        f"{n / sha_rate * 1e3:.1f} ms)"
    )
    print(
        f"monthly delta: {len(delta_records)} records, {len(second.delta):,} bytes; apply "
        f"{delta_s * 1e3:.2f} ms (raw: 1 Ed25519 verify {1 / ed_rate * 1e3:.3f} ms + "
        f"{len(delta_records)} leaf hashes {len(delta_records) / sha_rate * 1e3:.2f} ms)"
    )
    ratio = delta_s / full_s
    verdict = "meets" if ratio < 0.01 else "MISSES"
    print(f"delta / full = 1/{1 / ratio:,.0f} ({verdict} the goal of < 1/100)")


if __name__ == "__main__":
    main()
