"""Benchmark the CBOR/COSE core on a realistic ~1.5 KB import certificate.

Prints sign1/s, verify1/s, verify1 + strict decoding of the payload/s, encode/s and decode/s,
each beside the raw limit measured in the same run (raw PyNaCl Ed25519 sign or verify over
the same bytes; cbor2's C codec for encode and decode) and the ratio. The issue's goal:
verify1 + strict decoding at >= 70 % of raw verify.

Run: .venv/bin/python benchmarks/bench_protocol.py        (about 30 s)
     .venv/bin/python benchmarks/bench_protocol.py --quick (a few seconds, smoke run)
"""

from __future__ import annotations

import sys
from pathlib import Path

import cbor2
import nacl.signing

sys.path.insert(0, str(Path(__file__).parent))

from _common import Bench, parse_args

from permitnet.protocol import (
    Sign1Message,
    decode_cbor,
    encode_cbor,
    key_id,
    public_key_from_seed,
    sign1,
    verify1,
)
from permitnet.protocol.cose import _sig_structure

SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")


def import_certificate() -> dict[str, object]:
    """An import certificate payload shaped like permitnet.protocol's, with three items.

    Built here rather than from permitnet.protocol.doc_examples so that the benchmark measures
    the codec on a fixed input while the document types evolve; the field names and value
    types are those of the import certificate payload.
    """

    def item(substance: str, base: str, factor: str, quantity_mg: int, base_mg: int) -> object:
        return {
            "substance": substance,
            "base": base,
            "convention": "1961",
            "schedule": "I",
            "factor": factor,
            "quantity_mg": quantity_mg,
            "base_mg": base_mg,
            "preparation": "bulk powder, in sealed double polyethylene bags, 25 kg drums",
        }

    return {
        "v": 1,
        "type": "import_certificate",
        "number": "DE-IC-2026-004711",
        "issuer": "DE",
        "recipient": "IN",
        "exporting_country": "IN",
        "authority": "Bundesinstitut fur Arzneimittel und Medizinprodukte, Bundesopiumstelle",
        "date_of_issue": "2026-11-24",
        "valid_from": "2026-11-24",
        "valid_until": "2027-05-23",
        "issued_at": 1_795_500_000,
        "estimate_year": 2026,
        "several_consignments": True,
        "importer": {
            "name": "Beispiel Pharma Import- und Vertriebsgesellschaft mbH",
            "address": "Industriestrasse 17-19\nGebaude C, Wareneingang Betaubungsmittel\n"
            "10115 Berlin\nGermany",
            "licence": "BtM-4021337-2026",
        },
        "exporter": {
            "name": "Example Alkaloids and Fine Chemicals Private Limited",
            "address": "Plot 7, Phase II, Industrial Development Area\nPatancheru Mandal\n"
            "Sangareddy District, Hyderabad 502319\nTelangana, India",
            "licence": "NDPS-MFG-2291/2026",
        },
        "items": [
            item("morphine-sulfate-pentahydrate", "morphine", "0.7518", 25_000_000, 18_795_000),
            item("oxycodone-hydrochloride", "oxycodone", "0.8964", 5_000_000, 4_482_000),
            item("codeine-phosphate-hemihydrate", "codeine", "0.7350", 40_000_000, 29_400_000),
        ],
        "conditions": "Delivery by air freight through Frankfurt am Main airport only, "
        "into the bonded warehouse of the importer. The export authorization must quote this "
        "certificate's number; the importer endorses the quantities received within 15 days.",
        "customs_office": "Zollamt Berlin-Flughafen, DE004711",
        "purpose": "Manufacture of medicinal products for the German market",
    }


def main() -> int:
    """Run the benchmark and print its table."""
    args = parse_args(__doc__ or "")
    bench = Bench(title="Protocol", rounds=3 if args.quick else 15)
    if args.quick:
        bench.round_seconds = 0.02

    document = import_certificate()
    payload = encode_cbor(document)
    public_key = public_key_from_seed(SEED)
    kid = key_id(public_key)
    message = sign1(payload, SEED, kid)
    parsed = Sign1Message.from_bytes(message)
    to_be_signed = _sig_structure(parsed.protected_bytes, parsed.payload)
    signing_key = nacl.signing.SigningKey(SEED)
    verify_key = nacl.signing.VerifyKey(public_key)
    signed_raw = signing_key.sign(to_be_signed)
    assert decode_cbor(verify1(message, public_key)) == document

    print(f"payload {len(payload)} bytes, COSE_Sign1 message {len(message)} bytes")
    compiled = type(cbor2.loads).__name__ == "builtin_function_or_method"
    print(f"python {sys.version.split()[0]}, cbor2 compiled: {compiled}")
    bench.header()

    def raw_sign() -> object:
        return signing_key.sign(to_be_signed)

    def raw_verify() -> object:
        return verify_key.verify(signed_raw)

    bench.compare(
        "sign1 (payload encoded)",
        lambda: sign1(payload, SEED, kid),
        limit=("raw PyNaCl Ed25519 sign", raw_sign),
    )
    bench.compare(
        "verify1",
        lambda: verify1(message, public_key),
        limit=("raw PyNaCl Ed25519 verify", raw_verify),
    )
    goal = bench.compare(
        "verify1 + strict decode of payload",
        lambda: decode_cbor(verify1(message, public_key)),
        limit=("raw PyNaCl Ed25519 verify", raw_verify),
    )
    bench.compare(
        "encode_cbor (deterministic)",
        lambda: encode_cbor(document),
        limit=("cbor2.dumps (C, unsorted)", lambda: cbor2.dumps(document)),
    )
    bench.compare(
        "decode_cbor (strict)",
        lambda: decode_cbor(payload),
        limit=("cbor2.loads (C, lenient)", lambda: cbor2.loads(payload)),
    )
    bench.compare(
        "decode_cbor (strict), vs verify",
        lambda: decode_cbor(payload),
        limit=("raw PyNaCl Ed25519 verify", raw_verify),
    )
    bench.compare(
        "Sign1Message.from_bytes (parse)",
        lambda: Sign1Message.from_bytes(message),
        limit=("raw PyNaCl Ed25519 verify", raw_verify),
    )
    verdict = "meets" if goal.ratio >= 0.70 else "falls short of"
    print(f"verify1 + strict decode is {goal.ratio:.1%} of raw verify: {verdict} the 70 % goal")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
