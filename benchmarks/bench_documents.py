"""Benchmark signed documents: SignedDocument.verify and sign, payload reading, rules.

Prints each rate beside the raw limit measured in the same run, interleaved: raw PyNaCl
Ed25519 verify (or sign) over the same signed bytes, so the ratio shows what the strict
decoding and the document checks cost on top of the signature itself.

Run: .venv/bin/python benchmarks/bench_documents.py         (about 30 s)
     .venv/bin/python benchmarks/bench_documents.py --quick (a few seconds, smoke run)
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import nacl.bindings
import nacl.signing

sys.path.insert(0, str(Path(__file__).parent))

from _common import Bench, parse_args

from permitnet.protocol import Sign1Message, decode_cbor, public_key_from_seed
from permitnet.protocol.cose import _sig_structure
from permitnet.protocol.doc_examples import (
    example_export_authorization,
    example_import_certificate,
    example_kid,
    example_seed,
)
from permitnet.protocol.documents import document_from_payload
from permitnet.protocol.rules import check_export_authorization
from permitnet.protocol.signed import SignedDocument


def main() -> int:
    """Run the benchmark and print the table."""
    args = parse_args(__doc__ or "")
    bench = Bench(title="Signed documents", rounds=3 if args.quick else 9)
    if args.quick:
        bench.round_seconds = 0.02
    seed, kid = example_seed("DE"), example_kid("DE")
    public_key = public_key_from_seed(seed)
    certificate = example_import_certificate()
    signed = SignedDocument.sign(certificate, signing_key=seed, kid=kid)
    raw = signed.raw
    message = Sign1Message.from_bytes(raw)
    to_be_signed = _sig_structure(message.protected_bytes, message.payload)
    signed_message = message.signature + to_be_signed
    signing_key = nacl.signing.SigningKey(seed)
    payload = decode_cbor(message.payload, allowed_tags=frozenset())
    authorization = example_export_authorization(signed.id)

    def raw_verify() -> object:
        return nacl.bindings.crypto_sign_open(signed_message, public_key)

    def raw_sign() -> object:
        return signing_key.sign(to_be_signed)

    bench.header()
    print(f"(import certificate, 2 items, {len(raw)} bytes signed)")
    bench.compare(
        "SignedDocument.verify",
        lambda: SignedDocument.verify(raw, public_key),
        limit=("raw Ed25519 verify", raw_verify),
    )
    bench.compare(
        "SignedDocument.sign (validates)",
        lambda: SignedDocument.sign(certificate, signing_key=seed, kid=kid),
        limit=("raw Ed25519 sign", raw_sign),
    )
    bench.compare(
        "document_from_payload",
        lambda: document_from_payload(payload),
        limit=("raw Ed25519 verify", raw_verify),
    )
    bench.compare(
        "check_export_authorization",
        lambda: check_export_authorization(
            authorization, certificate, certificate_id=signed.id, today=dt.date(2026, 1, 20)
        ),
        limit=("raw Ed25519 verify", raw_verify),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
