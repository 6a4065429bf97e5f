"""``permitnet verify FILE``: is this printed PDF, scan, QR text or signed file authentic?

And ``permitnet print FILE``: verify it the same way, then print it as a PDF (from the signed
file, or again from the QR code of a worn paper copy).

Offline: the document is checked against a registry snapshot already on disk, never fetched.
Either the node's own cached snapshot (``--node DIR``, the default when the current directory
is a node), or a snapshot file with the registry root metadata it is verified under
(``--snapshot FILE --root FILE``; the root may also come from ``--node``).

On success the verdict and every field of the document are printed; on failure, one line
that says why, and the exit code is 1.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from permitnet.node.config import CONFIG_FILE, NodeConfig
from permitnet.node.errors import NodeError, NotFoundError
from permitnet.node.lifecycle import CANCELLED
from permitnet.node.offline_inputs import MAX_INPUT_SIZE
from permitnet.node.offline_verify import Verdict, verify_offline
from permitnet.node.printing import attachment_name, print_document
from permitnet.node.registry_fetch import RegistryFetcher
from permitnet.node.store import Store
from permitnet.protocol.errors import ProtocolError
from permitnet.protocol.registry_client import TrustedRegistry
from permitnet.tools.cli import CliError

if TYPE_CHECKING:
    import argparse

    from permitnet.protocol.registry_view import RegistryView

__all__ = ["load_node_view", "load_snapshot_view", "node_record_state", "register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``verify`` and ``print`` commands."""
    parser = subparsers.add_parser(
        "verify",
        help="verify a printed PDF, a scan of its QR code, a QR text or a signed file, offline",
        description="Verify a permitnet document offline against a cached registry snapshot: "
        "a printed PDF (its attachment and its QR code), a PNG or JPEG scan or photo of the QR "
        "code, a file holding the QR text, or the signed file (.cose). Prints the verdict: "
        "authentic or not and why, issuer, key and its status, validity, what the document "
        "refers to, and the registry version used. Exit code 0 only when authentic.",
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="the file to verify ('-': stdin)")
    _registry_options(parser)
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")
    parser.set_defaults(handler=cmd_verify)

    printer = subparsers.add_parser(
        "print",
        help="verify a signed document offline, then print it as a PDF with its QR code",
        description="Verify a signed file, a QR text, a scan of a QR code or a printed PDF "
        "offline (as 'permitnet verify' does), then print the signed document as a PDF with "
        "every field, the issuing authority, its QR code and the signed file attached. Only "
        "an authentic document is printed.",
    )
    printer.add_argument("file", type=Path, metavar="FILE", help="the file to print ('-': stdin)")
    _registry_options(printer)
    printer.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="PDF",
        help="where to write the PDF (default: <type>-<reference>.pdf in the current directory)",
    )
    printer.add_argument("--force", action="store_true", help="overwrite an existing file")
    printer.set_defaults(handler=cmd_print)


def _registry_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--node",
        type=Path,
        metavar="DIR",
        help="use this node's cached registry snapshot and pinned root "
        "(default: the current directory, if it is a node)",
    )
    parser.add_argument(
        "--snapshot",
        type=Path,
        metavar="FILE",
        help="verify against this signed registry snapshot file instead",
    )
    parser.add_argument(
        "--root",
        type=Path,
        action="append",
        metavar="FILE",
        help="the registry root metadata the snapshot is verified under; repeat for each "
        "root rotation since, in order (default: the node's pinned root)",
    )
    parser.add_argument(
        "--at",
        type=int,
        metavar="UNIX_SECONDS",
        help="verify as of this time instead of now (validity and snapshot expiry)",
    )


def cmd_verify(args: argparse.Namespace) -> int:
    """Verify one file and print the verdict; return 0 only if it is authentic."""
    verdict = _verify(args)
    if args.json:
        print(json.dumps(verdict.to_payload(), indent=2, ensure_ascii=False))
        return 0 if verdict.authentic else 1
    if not verdict.authentic:
        print(f"permitnet: {verdict.summary()[0]}", file=sys.stderr)
        return 1
    for line in verdict.summary():
        print(line)
    for section in verdict.sections:
        print(f"\n{section.heading}")
        for field in section.fields:
            value = field.value.replace("\n", "\n" + " " * 4)
            print(f"  {field.label}:\n    {value}")
    return 0


def cmd_print(args: argparse.Namespace) -> int:
    """Verify one file, then print its signed document as a PDF; return 0 when written."""
    verdict = _verify(args)
    if not verdict.authentic or verdict.signed is None:
        print(f"permitnet: {verdict.summary()[0]}; not printed", file=sys.stderr)
        return 1
    signed = verdict.signed
    try:
        # A PDF input was printed again to compare it: that printout is the one to write.
        pdf = verdict.printout if verdict.printout is not None else print_document(signed)
    except NodeError as e:
        raise CliError(str(e)) from e
    output: Path = args.output or Path(attachment_name(signed)).with_suffix(".pdf")
    if output.exists() and not args.force:
        raise CliError(f"{output} exists: give --force to overwrite it, or -o another file")
    temporary = output.with_name(output.name + ".tmp")
    try:
        temporary.write_bytes(pdf)
        temporary.replace(output)
    except OSError as e:
        raise CliError(f"cannot write {output}: {e.strerror or e}") from e
    print(
        f"wrote {output}: {verdict.title} {verdict.reference}, verified against registry "
        f"snapshot version {verdict.registry_version}"
    )
    for warning in verdict.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _verify(args: argparse.Namespace) -> Verdict:
    """Read the input, verify it against the chosen registry data, and add the node's record."""
    data = _read_input(args.file)
    config = _node_config(args)
    view = _registry_view(args, config)
    now = int(time.time()) if args.at is None else args.at
    verdict = verify_offline(data, view, now=now)
    if config is None or not verdict.authentic or verdict.document_id is None:
        return verdict
    # A cancellation is a separate document that reaches the nodes, not the paper: a node's
    # own record says whether the document was cancelled.
    if node_record_state(config, verdict.document_id) != CANCELLED:
        return verdict
    return dataclasses.replace(
        verdict,
        validity=f"CANCELLED by its issuer (recorded by the node in {config.data_dir}); "
        f"{verdict.validity}",
        warnings=(
            *verdict.warnings,
            "the issuer has cancelled this document: it no longer authorizes anything",
        ),
    )


def node_record_state(config: NodeConfig, document_id: str) -> str | None:
    """Return the state the node's database records for a document, or None if it has none.

    Raises:
        CliError: the database exists but cannot be opened.
    """
    if not config.database_path.exists():
        return None
    return asyncio.run(_read_state(config, document_id))


async def _read_state(config: NodeConfig, document_id: str) -> str | None:
    try:
        store = await Store.open(config.database_path)
    except NodeError as e:
        raise CliError(f"cannot open the node's database: {e}") from e
    try:
        return (await store.get_document(document_id)).state
    except NotFoundError:
        return None
    finally:
        await store.close()


def _read_input(path: Path) -> bytes:
    try:
        if str(path) == "-":
            data = sys.stdin.buffer.read(MAX_INPUT_SIZE + 1)
        else:
            with path.open("rb") as file:
                data = file.read(MAX_INPUT_SIZE + 1)
    except OSError as e:
        raise CliError(f"cannot read {path}: {e.strerror or e}") from e
    if len(data) > MAX_INPUT_SIZE:
        raise CliError(f"{path} is larger than the {MAX_INPUT_SIZE} bytes accepted")
    return data


def _node_config(args: argparse.Namespace) -> NodeConfig | None:
    node_dir: Path | None = args.node
    if node_dir is None and (Path.cwd() / CONFIG_FILE).exists():
        node_dir = Path.cwd()
    return None if node_dir is None else _load_config(node_dir)


def _registry_view(args: argparse.Namespace, config: NodeConfig | None) -> RegistryView:
    if args.snapshot is not None:
        roots: list[Path] = list(args.root or [])
        if not roots:
            if config is None:
                raise CliError(
                    "a snapshot file is verified under the registry root: give --root FILE "
                    "(the root metadata the INCB publishes) or --node DIR"
                )
            roots = [config.registry_root_path]
        return load_snapshot_view(
            _read_file(args.snapshot, "snapshot"),
            [_read_file(root, "registry root") for root in roots],
        )
    if args.root:
        raise CliError("--root is only used with --snapshot FILE")
    if config is None:
        raise CliError(
            "no registry data: give --node DIR (a node's cached snapshot) or "
            "--snapshot FILE --root FILE"
        )
    return load_node_view(config)


def _load_config(node_dir: Path) -> NodeConfig:
    try:
        return NodeConfig.load(node_dir)
    except NodeError as e:
        raise CliError(f"{node_dir} is not a usable node directory: {e}") from e


def _read_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise CliError(f"cannot read the {what} file {path}: {e.strerror or e}") from e


def load_snapshot_view(snapshot: bytes, roots: list[bytes]) -> RegistryView:
    """Verify a signed snapshot under the pinned root and its rotations, whatever its age.

    The snapshot's expiry is not enforced here: the verdict warns when it has passed.

    Raises:
        CliError: a root or the snapshot does not verify; the message says which and why.
    """
    try:
        trusted = TrustedRegistry(roots[0])
    except ProtocolError as e:
        raise CliError(f"the registry root does not verify: {e}") from e
    for number, raw in enumerate(roots[1:], start=2):
        try:
            trusted.update_root(raw)
        except ProtocolError as e:
            raise CliError(f"registry root number {number} does not verify: {e}") from e
    try:
        return trusted.update_snapshot(snapshot, now=None)
    except ProtocolError as e:
        raise CliError(f"the registry snapshot does not verify: {e}") from e


def load_node_view(config: NodeConfig) -> RegistryView:
    """Load the node's cached registry state, re-verified from disk; no network is used.

    Raises:
        CliError: the pinned root cannot be read, or the node has no usable cached snapshot.
    """
    root = _read_file(config.registry_root_path, "pinned registry root")
    return asyncio.run(_cached_view(config, root))


async def _cached_view(config: NodeConfig, root: bytes) -> RegistryView:
    # The fetcher re-verifies the cache when it is made; its session is never used here.
    async with aiohttp.ClientSession() as session:
        try:
            fetcher = RegistryFetcher(
                list(config.registry_urls), config.registry_cache_path, root, session, 0
            )
        except ProtocolError as e:
            raise CliError(f"the node's pinned registry root does not verify: {e}") from e
        view = fetcher.current
        if view is None:
            why = f" ({fetcher.last_error})" if fetcher.last_error else ""
            raise CliError(
                f"the node in {config.data_dir} has no cached registry snapshot{why}: let it "
                "refresh, or give --snapshot FILE --root FILE"
            )
        return view
