"""``permitnet verify``: offline against a snapshot file or a node's cache; one line on failure."""

# The sample documents and registry are shared with tests/node; pytest's importlib mode names
# test modules after their path (tests.node...), which is what the relative imports rely on.
# ruff: noqa: TID252

from __future__ import annotations

import io
import json
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pypdfium2
import pytest

from permitnet.node import printout_check
from permitnet.node.config import NodeConfig
from permitnet.node.printing import print_document
from permitnet.node.registry_cache import _SNAPSHOT_FILE
from permitnet.protocol.qr import encode_qr_text
from permitnet.tools import verify_cli
from permitnet.tools.cli import main

from ..node.test_offline_verify import (
    NOW,
    PINNED_ROOT,
    flip,
    key,
    snapshot,
)
from ..node.test_printing import DE_SEED, FR_SEED, export_authorization, import_certificate

if TYPE_CHECKING:
    from pathlib import Path

CERTIFICATE = import_certificate()
SNAPSHOT = snapshot(key("DE", DE_SEED), key("FR", FR_SEED))


@pytest.fixture
def registry_files(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "root.cbor"
    root.write_bytes(PINNED_ROOT)
    snap = tmp_path / "snapshot.cbor"
    snap.write_bytes(SNAPSHOT)
    return snap, root


def make_node(directory: Path, *, cached: bool) -> Path:
    """A node directory; with ``cached``, its registry cache holds the snapshot, as a node
    leaves it after a refresh."""
    directory.mkdir()
    config = NodeConfig(
        data_dir=directory,
        country="DE",
        authority_name="Bundesopiumstelle",
        registry_urls=("http://127.0.0.1:9",),
        registry_root=directory / "registry-root.cbor",
        public_url="http://127.0.0.1:9",
    )
    config.save()
    config.registry_root_path.write_bytes(PINNED_ROOT)
    if cached:
        config.registry_cache_path.mkdir()
        (config.registry_cache_path / _SNAPSHOT_FILE).write_bytes(SNAPSHOT)
    return directory


@pytest.fixture
def node_dir(tmp_path: Path) -> Path:
    return make_node(tmp_path / "node", cached=True)


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def png_of(pdf: bytes) -> bytes:
    document = pypdfium2.PdfDocument(pdf)
    buffer = io.BytesIO()
    document[0].render(scale=200 / 72).to_pil().save(buffer, "PNG")
    return buffer.getvalue()


INPUTS = [
    pytest.param("certificate.pdf", lambda: print_document(CERTIFICATE), id="pdf"),
    pytest.param("scan.png", lambda: png_of(print_document(CERTIFICATE)), id="png"),
    pytest.param("qr.txt", (encode_qr_text(CERTIFICATE.raw) + "\n").encode, id="text"),
    pytest.param("certificate.cose", lambda: CERTIFICATE.raw, id="signed file"),
]


@pytest.mark.parametrize(("name", "make"), INPUTS)
def test_verifies_every_kind_of_input_against_a_snapshot_file(
    name: str,
    make: object,
    tmp_path: Path,
    registry_files: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert callable(make)
    snap, root = registry_files
    path = write(tmp_path, name, make())
    code = main(["verify", path, "--snapshot", str(snap), "--root", str(root), "--at", str(NOW)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("AUTHENTIC: Import certificate DE-IC-2026-000123\n")
    assert f"Document identifier: {CERTIFICATE.id_hex}" in out
    assert "Signing key: " in out
    assert "active, registered to DE" in out
    assert "Validity: in force on 2026-12-18" in out
    assert "Registry: snapshot version 1" in out
    assert "Pharma Import GmbH" in out  # every field follows the verdict


def test_verifies_against_the_nodes_cached_snapshot(
    tmp_path: Path, node_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    authorization = export_authorization(CERTIFICATE)
    path = write(tmp_path, "ea.pdf", print_document(authorization))
    code = main(["verify", path, "--node", str(node_dir), "--at", str(NOW)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("AUTHENTIC: Export authorization FR-EA-2026-0042")
    assert (
        f"Refers to: issued against import certificate DE-IC-2026-000123 ({CERTIFICATE.id_hex})"
        in out
    )


def test_json_output(
    tmp_path: Path, registry_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    snap, root = registry_files
    path = write(tmp_path, "c.cose", CERTIFICATE.raw)
    args = ["verify", path, "--snapshot", str(snap), "--root", str(root), "--at", str(NOW)]
    assert main([*args, "--json"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["authentic"] is True
    assert verdict["issuer"] == "DE"
    assert verdict["registry_version"] == 1
    assert verdict["fields"]["Importer and exporter"]["Importer"].startswith("Pharma Import")


def tampered_pdf() -> bytes:
    from ..node.test_offline_verify import tampered_pdf_text

    return tampered_pdf_text()


FAILURES = [
    pytest.param(
        "t.cose",
        lambda: flip(CERTIFICATE.raw, len(CERTIFICATE.raw) - 70),
        "NOT AUTHENTIC: the signature does not verify with the registered key of Germany (DE)",
        id="tampered signed file",
    ),
    pytest.param(
        "t.pdf",
        tampered_pdf,
        "NOT AUTHENTIC: the PDF's printed text was altered",
        id="tampered pdf text",
    ),
    pytest.param(
        "t.txt",
        encode_qr_text(CERTIFICATE.raw)[:-3].encode,
        "NOT AUTHENTIC: cannot read the input: the QR text is not a valid permitnet QR text",
        id="truncated qr text",
    ),
    pytest.param(
        "e.txt",
        lambda: b"",
        "NOT AUTHENTIC: cannot read the input: the file is empty",
        id="empty file",
    ),
]


@pytest.mark.parametrize(("name", "make", "message"), FAILURES)
def test_failures_print_one_line_and_exit_1(
    name: str,
    make: object,
    message: str,
    *,
    tmp_path: Path,
    registry_files: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert callable(make)
    snap, root = registry_files
    path = write(tmp_path, name, make())
    code = main(["verify", path, "--snapshot", str(snap), "--root", str(root), "--at", str(NOW)])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"permitnet: {message}")


USAGE_ERRORS = [
    (
        "missing file",
        ["{tmp}/nope.pdf", "--snapshot", "{snap}", "--root", "{root}"],
        "cannot read {tmp}/nope.pdf",
    ),
    ("snapshot without root", ["{file}", "--snapshot", "{snap}"], "give --root FILE"),
    ("root without snapshot", ["{file}", "--root", "{root}"], "--root is only used with"),
    ("no registry at all", ["{file}"], "no registry data: give --node DIR"),
    ("not a node", ["{file}", "--node", "{tmp}"], "is not a usable node directory"),
    (
        "bad snapshot",
        ["{file}", "--snapshot", "{file}", "--root", "{root}"],
        "the registry snapshot does not verify",
    ),
    (
        "bad root",
        ["{file}", "--snapshot", "{snap}", "--root", "{file}"],
        "the registry root does not verify",
    ),
    ("node without cache", ["{file}", "--node", "{empty_node}"], "has no cached registry snapshot"),
]


@pytest.mark.parametrize(
    ("argv", "message"), [pytest.param(a, m, id=n) for n, a, m in USAGE_ERRORS]
)
def test_usage_errors_are_one_line(
    argv: list[str],
    message: str,
    *,
    tmp_path: Path,
    registry_files: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    snap, root = registry_files
    empty_node = make_node(tmp_path / "empty", cached=False)
    places = {
        "tmp": str(tmp_path),
        "snap": str(snap),
        "root": str(root),
        "file": write(tmp_path, "c.cose", CERTIFICATE.raw),
        "empty_node": str(empty_node),
    }
    code = main(["verify", *(a.format(**places) for a in argv)])
    err = capsys.readouterr().err.splitlines()
    assert code == 1
    assert len(err) == 1, err
    assert message.format(**places) in err[0]


def _run_installed(path: str, snap: Path, root: Path) -> subprocess.CompletedProcess[str]:
    """``permitnet verify PATH`` in a new Python process, as an installed command runs."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "permitnet.tools.cli",
            "verify",
            path,
            "--snapshot",
            str(snap),
            "--root",
            str(root),
            "--at",
            str(NOW),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_installed_command_runs(tmp_path: Path, registry_files: tuple[Path, Path]) -> None:
    snap, root = registry_files
    path = write(tmp_path, "c.cose", flip(CERTIFICATE.raw, 40))
    result = _run_installed(path, snap, root)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("permitnet: NOT AUTHENTIC: ")
    assert result.stderr.count("\n") == 1


def test_print_verifies_then_prints_from_a_signed_file_or_a_scan(
    tmp_path: Path,
    registry_files: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    snap, root = registry_files
    registry = ["--snapshot", str(snap), "--root", str(root), "--at", str(NOW)]
    signed_file = write(tmp_path, "c.cose", CERTIFICATE.raw)
    assert main(["print", signed_file, *registry]) == 0
    out = capsys.readouterr().out
    written = tmp_path / "import-certificate-DE-IC-2026-000123.pdf"
    assert out.startswith(f"wrote {written.name}: Import certificate DE-IC-2026-000123")
    assert written.read_bytes() == print_document(CERTIFICATE)
    # A worn paper copy: print again from a scan of its QR code.
    scan = write(tmp_path, "scan.png", png_of(written.read_bytes()))
    assert main(["print", scan, *registry, "-o", str(tmp_path / "again.pdf")]) == 0
    assert (tmp_path / "again.pdf").read_bytes() == written.read_bytes()
    # No silent overwrite.
    assert main(["print", signed_file, *registry]) == 1
    assert "exists: give --force" in capsys.readouterr().err
    assert main(["print", signed_file, *registry, "--force"]) == 0


def test_printing_a_pdf_prints_the_document_once(
    tmp_path: Path,
    registry_files: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Verifying a PDF prints its signed document again to compare the pages; printing it
    # then writes that printout rather than rendering a third of a second again.
    snap, root = registry_files
    pdf = write(tmp_path, "c.pdf", print_document(CERTIFICATE))
    renders: list[object] = []
    real = print_document

    def counting(*args: Any, **kwargs: Any) -> bytes:
        renders.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(printout_check, "print_document", counting)
    monkeypatch.setattr(verify_cli, "print_document", counting)
    output = tmp_path / "out.pdf"
    registry = ["--snapshot", str(snap), "--root", str(root), "--at", str(NOW)]
    assert main(["print", pdf, *registry, "-o", str(output)]) == 0
    capsys.readouterr()
    assert len(renders) == 1
    assert output.read_bytes() == print_document(CERTIFICATE)


def test_print_refuses_what_is_not_authentic(
    tmp_path: Path, registry_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    snap, root = registry_files
    forged = write(tmp_path, "f.cose", flip(CERTIFICATE.raw, len(CERTIFICATE.raw) - 70))
    output = tmp_path / "out.pdf"
    code = main(["print", forged, "--snapshot", str(snap), "--root", str(root), "-o", str(output)])
    err = capsys.readouterr().err.splitlines()
    assert code == 1
    assert len(err) == 1
    assert err[0].startswith("permitnet: NOT AUTHENTIC: the signature does not verify")
    assert err[0].endswith("; not printed")
    assert not output.exists()


def test_in_a_node_directory_its_cache_is_the_default_and_stdin_is_read(
    node_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(node_dir)
    text = encode_qr_text(CERTIFICATE.raw) + "\n"
    result = subprocess.run(
        [sys.executable, "-m", "permitnet.tools.cli", "verify", "-", "--at", str(NOW)],
        input=text.encode(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().startswith("AUTHENTIC: Import certificate DE-IC-2026-000123")
    assert b"Found in: QR text" in result.stdout


def test_a_tampered_pdf_gives_exactly_one_line_from_the_installed_command(
    tmp_path: Path, registry_files: tuple[Path, Path]
) -> None:
    # Verifying a PDF reprints it; the font subsetting library must not add log lines.
    from ..node.test_offline_verify import tampered_pdf_text

    snap, root = registry_files
    path = write(tmp_path, "t.pdf", tampered_pdf_text())
    result = _run_installed(path, snap, root)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert "NOT AUTHENTIC: the PDF's printed text was altered" in result.stderr


async def _record(node: Path, state: str) -> None:
    from permitnet.node.store import DocumentRecord, Store

    config = NodeConfig.load(node)
    store = await Store.open(config.database_path)
    try:
        async with store.transaction() as tx:
            await tx.insert_document(
                DocumentRecord(
                    id=CERTIFICATE.id_hex,
                    raw=CERTIFICATE.raw,
                    doc_type="import_certificate",
                    issuer="DE",
                    recipient="FR",
                    issued_at=CERTIFICATE.document.issued_at,
                    direction="outbound",
                    state="active",
                ),
                actor="test",
            )
            if state != "active":
                await tx.set_state(CERTIFICATE.id_hex, state, actor="test")
    finally:
        await store.close()


@pytest.mark.parametrize(("state", "cancelled"), [("active", False), ("cancelled", True)])
def test_with_a_node_its_record_says_whether_the_issuer_cancelled_the_document(
    state: str,
    cancelled: bool,
    tmp_path: Path,
    node_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import asyncio

    asyncio.run(_record(node_dir, state))
    path = write(tmp_path, "c.cose", CERTIFICATE.raw)
    code = main(["verify", path, "--node", str(node_dir), "--at", str(NOW)])
    out = capsys.readouterr().out
    assert code == 0  # still authentic: it was signed by Germany's registered key
    assert ("Validity: CANCELLED by its issuer" in out) is cancelled
    assert ("Warning: the issuer has cancelled this document" in out) is cancelled
