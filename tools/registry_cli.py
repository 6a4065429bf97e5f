"""``permitnet registry ...``: operate the INCB registry on its data directory.

Every command that changes the registry is audited as ``cli:<user>``. Options are documented
in docs/registry-operator.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from permitnet.protocol.catalogue import DEFAULT_CATALOGUE
from permitnet.protocol.errors import ProtocolError
from permitnet.protocol.registry_requests import verify_key_request
from permitnet.registry.app import RegistryConfig, create_app
from permitnet.registry.errors import RegistryServerError
from permitnet.registry.export import export
from permitnet.registry.keys import read_seed, write_seed
from permitnet.registry.service import DEFAULT_EXPIRY_SECONDS, Registry
from permitnet.tools.cli import CliError

__all__ = ["register"]

Command = Callable[[str, str, Callable[[argparse.Namespace], int | None]], argparse.ArgumentParser]

DAY = 86_400


def _now() -> int:
    return int(time.time())


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _instant(text: str) -> int:
    """Parse Unix seconds or an ISO 8601 date/time (UTC unless an offset is given)."""
    if text.isdigit():
        return int(text)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is neither Unix seconds nor ISO 8601") from e
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp())


def _with_registry(
    fn: Callable[[Registry, argparse.Namespace], int | None],
) -> Callable[[argparse.Namespace], int | None]:
    def handler(args: argparse.Namespace) -> int | None:
        try:
            registry = Registry.open(Path(args.dir))
        except RegistryServerError as e:
            raise CliError(str(e)) from e
        try:
            return fn(registry, args)
        except (RegistryServerError, ProtocolError) as e:
            raise CliError(str(e)) from e
        finally:
            registry.close()

    return handler


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def _init(args: argparse.Namespace) -> None:
    try:
        registry = Registry.init(
            Path(args.dir),
            root_keys_dir=Path(args.root_keys_dir),
            root_keys=args.root_keys,
            threshold=args.threshold,
            now=_now(),
            actor=_actor(),
            expiry_seconds=int(args.expiry_days * DAY),
        )
    except RegistryServerError as e:
        raise CliError(str(e)) from e
    root = registry.root
    registry.close()
    print(f"registry created in {args.dir}; root v1: {args.threshold} of {args.root_keys} keys")
    print(f"root keys written to {args.root_keys_dir}: move them offline now")
    print("nodes pin root v1 (GET /v1/root/1, or v1/root/1 in an export); root key ids:")
    for kid in root.root_kids:
        print(f"  {kid.hex()}")


def _serve(args: argparse.Namespace) -> None:
    directory = Path(args.dir)
    try:
        Registry.open(directory).close()  # fail fast, with a clear message, before listening
    except RegistryServerError as e:
        raise CliError(str(e)) from e
    app = create_app(RegistryConfig(directory=directory))
    print(f"registry serving {directory} on http://{args.host}:{args.port}")
    web.run_app(app, host=args.host, port=args.port, print=None)


def _set_country(registry: Registry, args: argparse.Namespace) -> None:
    record = registry.set_country(
        args.code,
        authority=args.authority,
        endpoints=args.endpoint or [],
        contact=args.contact,
        actor=_actor(),
        now=_now(),
    )
    print(f"country {record.code} ({record.name}) set; publish to make it visible")


def _submit(registry: Registry, args: argparse.Namespace) -> None:
    row = registry.submit_key_request(Path(args.file).read_bytes(), actor=_actor(), now=_now())
    print(f"key request {row.id} ({row.action} for {row.country}) stored as pending")


def _requests(registry: Registry, args: argparse.Namespace) -> None:

    out = []
    for row in registry.store.requests(args.status):
        entry: dict[str, object] = {
            "id": row.id,
            "action": row.action,
            "country": row.country,
            "received_at": row.received_at,
            "status": row.status,
        }
        try:
            request = verify_key_request(row.raw, registry.state.keys)
            if request.public_key is not None:
                entry["fingerprint"] = request.new_key_record().kid.hex()
        except ProtocolError as e:
            entry["no_longer_valid"] = str(e)
        out.append(entry)
    _print(out)


def _approve(registry: Registry, args: argparse.Namespace) -> None:
    records = registry.approve_key_request(
        args.id,
        fingerprint=args.fingerprint,
        overlap_seconds=int(args.overlap_hours * 3600),
        actor=_actor(),
        now=_now(),
    )
    for key in records:
        print(f"key {key.kid.hex()} of {key.country}: {key.status}")
    print("publish to make the change visible")


def _reject(registry: Registry, args: argparse.Namespace) -> None:
    registry.reject_key_request(args.id, reason=args.reason, actor=_actor(), now=_now())
    print(f"key request {args.id} rejected")


def _hex(text: str, what: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError as e:
        raise CliError(f"{what} {text!r} is not hex") from e


def _revoke(registry: Registry, args: argparse.Namespace) -> None:
    kid = _hex(args.kid, "kid")
    key = registry.revoke_key(
        kid, compromised_at=args.compromised_at, reason=args.reason, actor=_actor(), now=_now()
    )
    print(f"key {key.kid.hex()} of {key.country} revoked from {key.compromised_at}; publish now")


def _estimate(kind: str) -> Callable[[Registry, argparse.Namespace], None]:
    def run(registry: Registry, args: argparse.Namespace) -> None:
        year = args.year if kind != "assessment" else int(args.effective[:4])
        record = registry.set_estimate(
            country=args.country,
            substance=args.substance,
            year=year,
            quantity_mg=args.quantity_mg,
            kind=kind,  # type: ignore[arg-type]  # one of three
            effective=args.effective,
            actor=_actor(),
            now=_now(),
        )
        suffix = f" #{record.sequence}" if record.sequence else ""
        print(
            f"{kind}{suffix} {record.country} {record.substance} {record.year}: "
            f"{record.quantity_mg} mg; publish to make it visible"
        )

    return run


def _catalogue(registry: Registry, args: argparse.Namespace) -> None:
    edition = args.edition or DEFAULT_CATALOGUE.edition
    digest = _hex(args.digest, "digest") if args.digest else DEFAULT_CATALOGUE.digest()
    registry.set_catalogue(edition, digest, actor=_actor(), now=_now())
    print(f"catalogue edition {edition} ({digest.hex()}) set")


def _publish(registry: Registry, args: argparse.Namespace) -> None:
    expiry = int(args.expiry_days * DAY) if args.expiry_days else None
    pub = registry.publish(actor=_actor(), now=_now(), expiry_seconds=expiry)
    print(
        f"published snapshot v{pub.version}: {pub.log_size} records, root "
        f"{pub.log_root.hex()}, {len(pub.snapshot)} bytes, expires {pub.expires_at}"
    )


def _rotate_root(registry: Registry, args: argparse.Namespace) -> None:
    old = [read_seed(Path(f)) for f in args.sign_with]
    new_dir = Path(args.new_keys_dir).resolve()
    if new_dir.is_relative_to(Path(args.dir).resolve()):
        raise CliError("new root keys must be kept offline, outside the data directory")
    new_dir.mkdir(parents=True, exist_ok=True)
    version = registry.root.version + 1
    new = [secrets.token_bytes(32) for _ in range(args.new_keys)]
    # The new keys are on disk before the root that names them exists, so that a failure
    # can never leave a root whose keys are lost; if the rotation is refused they go.
    files = [new_dir / f"root-v{version}-{n}.key" for n in range(1, len(new) + 1)]
    for path, seed in zip(files, new, strict=True):
        write_seed(path, seed)
    try:
        root = registry.rotate_root(
            old_seeds=old,
            new_seeds=new,
            threshold=args.threshold,
            rotate_snapshot_key=args.rotate_snapshot_key,
            actor=_actor(),
            now=_now(),
        )
    except BaseException:
        for path in files:
            path.unlink()
        raise
    print(f"root v{root.version} signed ({args.threshold} of {args.new_keys}); keys in {new_dir}")


def _export(registry: Registry, args: argparse.Namespace) -> None:
    count = export(registry, Path(args.out))
    print(f"exported {count} files to {args.out}")


def _token_add(registry: Registry, args: argparse.Namespace) -> None:
    secret = registry.add_token(args.name, actor=_actor(), now=_now())
    print(f"admin token {args.name!r} (shown once, only its hash is stored):")
    print(secret)


def _token_revoke(registry: Registry, args: argparse.Namespace) -> None:
    registry.revoke_token(args.name, actor=_actor(), now=_now())
    print(f"admin token {args.name!r} revoked")


def _token_list(registry: Registry, args: argparse.Namespace) -> None:
    del args
    rows = registry.store.token_names()
    _print([{"name": n, "created_at": c, "revoked_at": r} for n, c, r in rows])


def _audit(registry: Registry, args: argparse.Namespace) -> None:
    if args.verify:
        count = registry.store.verify_audit()
        print(f"audit log intact: {count} rows, hash chain verified")
        return
    _print(
        [
            {"id": a.id, "at": a.at, "actor": a.actor, "action": a.action, "detail": a.detail}
            for a in registry.store.audit_rows(args.limit)
        ]
    )


def _status(registry: Registry, args: argparse.Namespace) -> None:
    del args
    latest = registry.store.latest_version()
    state = registry.state
    _print(
        {
            "root_version": registry.root.version,
            "latest_version": latest,
            "log_size": registry.store.log_size(),
            "countries": len(state.countries),
            "keys": len(state.keys),
            "pending_key_requests": registry.store.count_requests("pending"),
        }
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``permitnet registry`` and its commands."""
    parser = subparsers.add_parser("registry", help="operate the INCB registry")
    commands = parser.add_subparsers(dest="registry_command", metavar="COMMAND", required=True)

    def command(
        name: str, help_text: str, handler: Callable[[argparse.Namespace], int | None]
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("dir", metavar="DIR", help="the registry data directory")
        sub.set_defaults(handler=handler)
        return sub

    for group in (_register_setup, _register_keys, _register_estimates, _register_publication):
        group(command)


def _register_setup(command: Command) -> None:
    p = command("init", "create a registry with k-of-n offline root keys", _init)
    p.add_argument("--root-keys-dir", required=True, help="where to write the root keys (offline)")
    p.add_argument("--root-keys", type=int, default=3, help="number of root keys (default 3)")
    p.add_argument("--threshold", type=int, default=2, help="root signatures needed (default 2)")
    p.add_argument(
        "--expiry-days",
        type=float,
        default=DEFAULT_EXPIRY_SECONDS / DAY,
        help="snapshot lifetime in days (default 7)",
    )
    p = command("serve", "serve the registry over HTTP", _serve)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8470)
    p = command(
        "add-country", "add or update a participating country", _with_registry(_set_country)
    )
    p.add_argument("code", help="ISO 3166-1 alpha-2 code")
    p.add_argument("--authority", required=True, help="the competent national authority")
    p.add_argument("--endpoint", action="append", help="node URL (repeatable)")
    p.add_argument("--contact", default="", help="contact address")


def _register_keys(command: Command) -> None:
    p = command(
        "submit-request",
        "store a signed key request received from a country",
        _with_registry(_submit),
    )
    p.add_argument("file", help="the request file (COSE_Sign1)")
    p = command(
        "requests", "list key requests with the fingerprint to confirm", _with_registry(_requests)
    )
    p.add_argument("--status", choices=["pending", "approved", "rejected"], default="pending")
    p = command(
        "approve", "approve a key request (enroll, rotate or revoke)", _with_registry(_approve)
    )
    p.add_argument("id", type=int)
    p.add_argument("--fingerprint", help="new key id (hex) confirmed out of band; needed to enroll")
    p.add_argument(
        "--overlap-hours",
        type=float,
        default=24.0,
        help="how long a rotated-out key stays valid (default 24)",
    )
    p = command("reject", "reject a key request", _with_registry(_reject))
    p.add_argument("id", type=int)
    p.add_argument("--reason", required=True)
    p = command("revoke-key", "revoke any key as the operator", _with_registry(_revoke))
    p.add_argument("kid", help="key id in hex")
    p.add_argument(
        "--compromised-at",
        type=_instant,
        required=True,
        help="Unix seconds or ISO 8601; documents signed from then on are invalid",
    )
    p.add_argument("--reason", required=True)


def _register_estimates(command: Command) -> None:
    for kind, help_text in (
        ("estimate", "set an annual estimate (narcotic drugs)"),
        ("supplementary", "add a supplementary estimate"),
    ):
        p = command(f"set-{kind}", help_text, _with_registry(_estimate(kind)))
        p.add_argument("country")
        p.add_argument("substance", help="substance code, e.g. morphine")
        p.add_argument("year", type=int)
        p.add_argument("quantity_mg", type=int, help="anhydrous base, integer milligrams")
        p.add_argument("--effective", required=True, help="YYYY-MM-DD")
    p = command(
        "set-assessment",
        "set an assessment (psychotropic substances)",
        _with_registry(_estimate("assessment")),
    )
    p.add_argument("country")
    p.add_argument("substance")
    p.add_argument("quantity_mg", type=int, help="anhydrous base, integer milligrams")
    p.add_argument("--effective", required=True, help="YYYY-MM-DD")
    p = command(
        "set-catalogue", "publish the catalogue edition in force", _with_registry(_catalogue)
    )
    p.add_argument("--edition", help="default: the built-in catalogue's edition")
    p.add_argument("--digest", help="SHA-256 in hex; default: the built-in catalogue's")


def _register_publication(command: Command) -> None:
    p = command("publish", "sign and publish the next snapshot", _with_registry(_publish))
    p.add_argument("--expiry-days", type=float, help="override the snapshot lifetime")
    p = command(
        "rotate-root", "sign the next root with old and new root keys", _with_registry(_rotate_root)
    )
    p.add_argument(
        "--sign-with",
        action="append",
        required=True,
        help="a current root key file (repeat up to the threshold)",
    )
    p.add_argument("--new-keys-dir", required=True, help="where to write the new root keys")
    p.add_argument("--new-keys", type=int, default=3)
    p.add_argument("--threshold", type=int, default=2)
    p.add_argument(
        "--rotate-snapshot-key", action="store_true", help="also replace the online snapshot key"
    )
    p = command("export", "write the signed files as a static mirror", _with_registry(_export))
    p.add_argument("out", metavar="OUT")
    p = command("token-add", "create an admin API bearer token", _with_registry(_token_add))
    p.add_argument("name", help="who holds it; audit rows name it")
    p = command("token-revoke", "revoke an admin API token", _with_registry(_token_revoke))
    p.add_argument("name")
    command("tokens", "list admin API tokens (names only)", _with_registry(_token_list))
    p = command("audit", "show the audit log, newest first", _with_registry(_audit))
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--verify", action="store_true", help="check the audit log's hash chain")
    command("status", "show versions and counts", _with_registry(_status))
