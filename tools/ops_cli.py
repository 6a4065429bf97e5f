"""Node operations on the command line: backup, restore, databank export, and LAN discovery.

``permitnet node backup DIR`` and ``restore``, ``permitnet node export DIR``,
``permitnet node rotate-key DIR [--activate]``, and
``permitnet discover``. The ``node`` group is shared with :mod:`permitnet.tools.node_cli`
(``init``, ``serve``): whichever module registers first creates the group, and the other adds
its commands to it through :func:`node_group`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import json
import shutil
import ssl
import sys
import time
import urllib.error
import urllib.request
import weakref
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import aiohttp

from permitnet.node.backup import backup_database, check_database, restore_database
from permitnet.node.config import CONFIG_FILE, NodeConfig
from permitnet.node.databank import ExportFilter, count_documents, export_databank
from permitnet.node.errors import NodeError
from permitnet.node.key_rotation import activate_rotation, prepare_rotation
from permitnet.node.registry_fetch import RegistryFetcher
from permitnet.tools.cli import CliError
from permitnet.tools.discover_cli import register_discover
from permitnet.tools.progress import progress_bar
from permitnet.tools.serve_options import ops_attach, ops_serve_options
from permitnet.tools.sync_cli import register_sync

if TYPE_CHECKING:
    from collections.abc import Callable

    from permitnet.protocol.registry_view import RegistryView

__all__ = ["node_group", "ops_attach", "ops_serve_options", "register", "registry_view_for"]

MANIFEST: Final = "manifest.json"
BACKUP_FORMAT: Final = "permitnet-node-backup-1"
DATABASE_IN_BACKUP: Final = "node.sqlite3"

#: The ``node`` group's subcommands, per top-level subparsers object. Weak keys: a parser that
#: is gone must not hand its group to a new one (ids are reused after garbage collection).
_NODE_GROUPS: weakref.WeakKeyDictionary[
    argparse._SubParsersAction[argparse.ArgumentParser],
    argparse._SubParsersAction[argparse.ArgumentParser],
] = weakref.WeakKeyDictionary()


def node_group(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """Return the subcommands of the ``node`` group, creating the group if needed.

    Both :mod:`permitnet.tools.node_cli` and this module add ``node`` subcommands; this is the
    one place the group is made, so there is never a second ``node`` parser.
    """
    if subparsers not in _NODE_GROUPS:
        parser = subparsers.add_parser(
            "node",
            help="run and operate a country node",
            description="Set up, run and operate a country's permitnet node.",
        )
        _NODE_GROUPS[subparsers] = parser.add_subparsers(dest="node_command", metavar="COMMAND")
        parser.set_defaults(handler=lambda _args: _print_help(parser))
    return _NODE_GROUPS[subparsers]


def _one_line(
    handler: Callable[[argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """Report node errors as one line (a CliError), with the traceback only on --debug."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except NodeError as e:
            raise CliError(str(e)) from e

    return run


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``node backup|restore|export|rotate-key`` and ``discover``."""
    node = node_group(subparsers)

    p = node.add_parser(
        "backup",
        help="back up a node (consistent while it runs)",
        description="Copy the node's database with SQLite's online backup (one consistent "
        "snapshot; the node keeps running), with node.toml, the registry root and the "
        "signing key file, into a new directory with a manifest of SHA-256 digests.",
    )
    p.add_argument("dir", type=Path, help="the node directory")
    p.add_argument("output", type=Path, nargs="?", help="backup directory to create")
    p.add_argument(
        "--without-key",
        action="store_true",
        help="leave the signing key file out (keep it in your key ceremony's safe instead)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_backup)

    p = node.add_parser(
        "restore",
        help="restore a node from a backup (node stopped)",
        description="Check a backup's manifest and database, then put its database in place "
        "in the node directory. Files the directory lacks (node.toml, key, registry root) are "
        "restored too, so a node can be rebuilt on a new machine. The node must be stopped.",
    )
    p.add_argument("backup", type=Path, help="a directory written by 'permitnet node backup'")
    p.add_argument("dir", type=Path, help="the node directory to restore into")
    p.add_argument(
        "--force",
        action="store_true",
        help="restore even though a node seems to answer at the configured address",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_restore)

    p = node.add_parser(
        "export",
        help="export the node's databank as CSV or JSON",
        description="Write the node's documents (one row per item in CSV, one object per "
        "document in JSON) for analysis. Consistent while the node runs.",
    )
    p.add_argument("dir", type=Path, help="the node directory")
    p.add_argument("--format", choices=("csv", "json"), default="csv", dest="fmt")
    p.add_argument("-o", "--output", default="-", help="file to write, or - for standard output")
    p.add_argument("--since", type=_date, help="issued on or after this date (YYYY-MM-DD)")
    p.add_argument("--until", type=_date, help="issued before this date (YYYY-MM-DD)")
    p.add_argument("--type", dest="doc_type", help="only this document type")
    p.add_argument("--partner", help="only documents exchanged with this country (e.g. FR)")
    p.add_argument(
        "--include-signed", action="store_true", help="JSON: add each document's signed bytes"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_export)

    p = node.add_parser(
        "rotate-key",
        help="rotate the node's signing key (prepare, then --activate)",
        description="Step 1 (no option): generate the next signing key and write a rotation "
        "request signed by the current key, to send to the INCB. Step 3 (--activate): once the "
        "registry lists the new key as active, switch the node to it (restart the node "
        "afterwards). Documents signed with the old key keep verifying.",
    )
    p.add_argument("dir", type=Path, help="the node directory")
    p.add_argument(
        "--activate", action="store_true", help="switch to the prepared key (the registry lists it)"
    )
    p.add_argument(
        "--valid-from", type=_date, help="the new key signs from this date (default: now)"
    )
    p.set_defaults(handler=cmd_rotate_key)

    register_sync(node)
    register_discover(subparsers)


def _date(text: str) -> int:
    try:
        day = date.fromisoformat(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date in YYYY-MM-DD form") from e
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@_one_line
def cmd_backup(args: argparse.Namespace) -> int:
    """Back up a node directory; see the parser's description."""
    config = NodeConfig.load(args.dir)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    output: Path = args.output or args.dir / "backups" / f"permitnet-{config.country}-{stamp}"
    if output.exists():
        raise CliError(f"{output} exists: choose a new backup directory")
    output.mkdir(parents=True)
    try:
        with progress_bar("backup", quiet=args.quiet) as report:
            result = backup_database(
                config.database_path, output / DATABASE_IN_BACKUP, progress=report
            )
        files: dict[str, str] = {DATABASE_IN_BACKUP: result.sha256}
        extras = {CONFIG_FILE: args.dir / CONFIG_FILE, "registry-root": config.registry_root_path}
        if not args.without_key:
            extras["signing-key"] = config.key_path
        for name, source in extras.items():
            if source.is_file():
                shutil.copy2(source, output / name)
                files[name] = _sha256(output / name)
        manifest = {
            "format": BACKUP_FORMAT,
            "country": config.country,
            "created_at": int(time.time()),
            "files": files,
            "key_file_name": config.key_file.name,
            "registry_root_name": config.registry_root.name,
        }
        (output / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    except BaseException:
        shutil.rmtree(output, ignore_errors=True)
        raise
    print(
        f"backup of {config.country} written to {output} "
        f"({result.pages} pages, {result.size} bytes, database sha256 {result.sha256})"
    )
    return 0


def _read_manifest(backup: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((backup / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise CliError(f"{backup} has no {MANIFEST}: not a permitnet node backup") from e
    except (OSError, ValueError) as e:
        raise CliError(f"cannot read {backup / MANIFEST}: {e}") from e
    if not isinstance(manifest, dict) or manifest.get("format") != BACKUP_FORMAT:
        raise CliError(f"{backup / MANIFEST} is not a {BACKUP_FORMAT} manifest")
    files = manifest.get("files")
    if not isinstance(files, dict) or DATABASE_IN_BACKUP not in files:
        raise CliError(f"{backup / MANIFEST} lists no database")
    for name, digest in files.items():
        path = backup / str(name)
        if not path.is_file():
            raise CliError(f"backup file {path} is missing")
        if _sha256(path) != digest:
            raise CliError(f"backup file {path} does not match its SHA-256 in the manifest")
    return manifest


def _node_answers(config: NodeConfig) -> bool:
    """Whether anything answers ``/healthz`` at the node's configured address (HTTP or HTTPS)."""
    host = "127.0.0.1" if config.host in {"0.0.0.0", "::"} else config.host  # noqa: S104
    # Only a liveness probe: whether something is there, never whom to trust, so the
    # certificate is not checked (the node may use a private CA).
    probe_tls = ssl.create_default_context()
    probe_tls.check_hostname = False
    probe_tls.verify_mode = ssl.CERT_NONE
    for scheme in ("http", "https"):
        url = f"{scheme}://{host}:{config.port}/healthz"
        try:
            with urllib.request.urlopen(  # noqa: S310 - http(s) only
                url, timeout=2, context=probe_tls if scheme == "https" else None
            ) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError, ValueError):
            continue
    return False


@_one_line
def cmd_restore(args: argparse.Namespace) -> int:
    """Restore a node directory from a backup; see the parser's description."""
    manifest = _read_manifest(args.backup)
    args.dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = manifest["files"]
    if not (args.dir / CONFIG_FILE).exists():
        if CONFIG_FILE not in files:
            raise CliError(f"{args.dir} has no {CONFIG_FILE} and the backup holds none")
        shutil.copy2(args.backup / CONFIG_FILE, args.dir / CONFIG_FILE)
    config = NodeConfig.load(args.dir)
    if manifest.get("country") != config.country:
        raise CliError(
            f"the backup is of {manifest.get('country')}, the node directory is {config.country}"
        )
    if not args.force and _node_answers(config):
        raise CliError(
            f"a node answers at {config.host}:{config.port}: stop it before restoring "
            "(or pass --force if that is another service)"
        )
    check_database(args.backup / DATABASE_IN_BACKUP)
    for name, target in (
        ("signing-key", config.key_path),
        ("registry-root", config.registry_root_path),
    ):
        if name in files and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(args.backup / name, target)
    with progress_bar("restore", quiet=args.quiet) as report:
        result = restore_database(
            args.backup / DATABASE_IN_BACKUP, config.database_path, progress=report
        )
    print(f"restored {config.country} database to {result.path} ({result.pages} pages)")
    return 0


@_one_line
def cmd_export(args: argparse.Namespace) -> int:
    """Export the databank; see the parser's description."""
    config = NodeConfig.load(args.dir)
    selection = ExportFilter(
        since=args.since, until=args.until, doc_type=args.doc_type, partner=args.partner
    )
    total = count_documents(config.database_path, selection)
    with contextlib.ExitStack() as stack:
        if args.output == "-":
            out = sys.stdout
        else:
            out = stack.enter_context(Path(args.output).open("w", encoding="utf-8", newline=""))
        report = stack.enter_context(progress_bar("export", unit="documents", quiet=args.quiet))
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            report(done, total)

        written = export_databank(
            config.database_path,
            out,
            fmt=args.fmt,
            selection=selection,
            include_signed=args.include_signed,
            country=config.country,
            now=int(time.time()),
            progress=advance,
        )
    if args.output != "-":
        print(f"exported {written} documents to {args.output}", file=sys.stderr)
    return 0


@_one_line
def cmd_rotate_key(args: argparse.Namespace) -> int:
    """Prepare or activate a signing key rotation; see the parser's description."""
    config = NodeConfig.load(args.dir)
    now = int(time.time())
    if not args.activate:
        prepared = prepare_rotation(config, now=now, valid_from=args.valid_from)
        print(
            f"new signing key {prepared.new_kid.hex()} prepared in {prepared.next_key_path}\n"
            f"send {prepared.request_path} to the INCB (signed by the current key "
            f"{prepared.current_kid.hex()}), confirm the new key's fingerprint by telephone,\n"
            f"then, once the registry lists it: permitnet node rotate-key {args.dir} --activate"
        )
        return 0
    view = asyncio.run(registry_view_for(config))
    done = activate_rotation(config, view, now=now)
    print(
        f"{config.country} now signs with {done.new_kid.hex()} (registry v{view.version}); "
        f"the old key {done.old_kid.hex()} is kept in {done.retired_path}. "
        "Restart the node to use the new key."
    )
    return 0


async def registry_view_for(config: NodeConfig) -> RegistryView:
    """Fetch the current registry view; fall back to the node's verified cache."""
    try:
        root = config.registry_root_path.read_bytes()
    except OSError as e:
        raise CliError(f"cannot read the pinned registry root: {e}") from e
    async with aiohttp.ClientSession() as session:
        fetcher = RegistryFetcher(
            list(config.registry_urls), config.registry_cache_path, root, session, 0
        )
        try:
            return await fetcher.refresh()
        except NodeError as e:
            if fetcher.current is None:
                raise CliError(f"no registry data: {e}") from e
            print(f"warning: {e}; using the cached registry view", file=sys.stderr)
            return fetcher.current
