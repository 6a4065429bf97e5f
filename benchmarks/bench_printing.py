"""Benchmark printing and offline verification of an import certificate.

Prints each rate beside raw PyNaCl Ed25519 verify over the same signed bytes, measured in the
same run with rounds interleaved: the ratio shows what finding the document (PDF attachment,
PDF rendering, QR decoding) costs on top of the signature check itself. Printing is compared
with raw Ed25519 signing, the least any issuing step costs.

Run: .venv/bin/python benchmarks/bench_printing.py         (about 40 s)
     .venv/bin/python benchmarks/bench_printing.py --quick (a few seconds, smoke run)
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import nacl.bindings
import nacl.signing
import pypdfium2

sys.path.insert(0, str(Path(__file__).parent))

from _common import Bench, parse_args

from permitnet.node.offline_inputs import extract_signed
from permitnet.node.offline_verify import verify_offline
from permitnet.node.print_layout import qr_matrix
from permitnet.node.printing import print_document
from permitnet.node.testing import TestCountry, registry_view
from permitnet.protocol import Sign1Message, public_key_from_seed
from permitnet.protocol.cose import _sig_structure
from permitnet.protocol.doc_examples import example_import_certificate, example_kid, example_seed
from permitnet.protocol.qr import decode_qr_text, encode_qr_text
from permitnet.protocol.signed import SignedDocument


def main() -> int:
    """Run the benchmark and print the table."""
    args = parse_args(__doc__ or "")
    bench = Bench(title="Printing and offline verification", rounds=3 if args.quick else 7)
    if args.quick:
        bench.round_seconds = 0.05
    seed, kid = example_seed("DE"), example_kid("DE")
    public_key = public_key_from_seed(seed)
    signed = SignedDocument.sign(example_import_certificate(), signing_key=seed, kid=kid)
    document = signed.document
    view = registry_view([TestCountry(code="DE", public_key=public_key, kid=kid)])
    now = document.issued_at + 86_400
    message = Sign1Message.from_bytes(signed.raw)
    signed_message = message.signature + _sig_structure(message.protected_bytes, message.payload)
    signing_key = nacl.signing.SigningKey(seed)
    to_be_signed = _sig_structure(message.protected_bytes, message.payload)

    pdf = print_document(signed)
    text = encode_qr_text(signed.raw)
    code, level = qr_matrix(text)
    page = pypdfium2.PdfDocument(pdf)[0].render(scale=200 / 72, grayscale=True).to_pil()
    png = io.BytesIO()
    page.save(png, "PNG")
    scan = png.getvalue()
    print(
        f"import certificate: {len(signed.raw)} bytes signed, QR text {len(text)} characters, "
        f"QR version {code.version} level {level} "
        f"({code.symbol_size(border=4)[0] * 0.5:.1f} mm with quiet zone), PDF {len(pdf)} bytes, "
        f"200 dpi page scan {len(scan)} bytes"
    )

    def raw_verify() -> object:
        return nacl.bindings.crypto_sign_open(signed_message, public_key)

    def raw_sign() -> object:
        return signing_key.sign(to_be_signed)

    bench.header()
    bench.compare(
        "QR text encode", lambda: encode_qr_text(signed.raw), limit=("raw sign", raw_sign)
    )
    bench.compare("QR text decode", lambda: decode_qr_text(text), limit=("raw verify", raw_verify))
    bench.compare("print PDF", lambda: print_document(signed), limit=("raw sign", raw_sign))
    bench.compare(
        "verify signed file",
        lambda: verify_offline(signed.raw, view, now=now),
        limit=("raw verify", raw_verify),
    )
    bench.compare(
        "verify QR text",
        lambda: verify_offline(text.encode(), view, now=now),
        limit=("raw verify", raw_verify),
    )
    bench.compare(
        "find document in 200 dpi scan",
        lambda: extract_signed(scan),
        limit=("raw verify", raw_verify),
    )
    bench.compare(
        "verify 200 dpi PNG scan",
        lambda: verify_offline(scan, view, now=now),
        limit=("raw verify", raw_verify),
    )
    bench.compare(
        "verify printed PDF (all checks)",
        lambda: verify_offline(pdf, view, now=now),
        limit=("raw verify", raw_verify),
    )
    verdict = verify_offline(pdf, view, now=now)
    if not verdict.authentic:  # pragma: no cover - the benchmark must measure the real path
        print(f"unexpected verdict: {verdict.reason}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
