"""``permitnet node init|serve|token|audit|user``: set up and run a country's node.

``init`` creates the node directory: ``node.toml``, the SQLite database, the Ed25519 signing
key (encrypted with a passphrase; ``--insecure-plaintext-key`` for demos only), the pinned
registry root, and the key enrollment request to send to the registry. ``serve`` runs the node.
``token`` manages the API's bearer tokens; ``audit verify`` checks the audit log's hash chain
(against heads recorded earlier with ``audit head``);
``user`` manages the web accounts (:mod:`permitnet.tools.node_user_cli`).
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pycountry
from aiohttp import web

from permitnet.node import audit, tokens
from permitnet.node.app import create_app
from permitnet.node.config import (
    DEFAULT_PASSPHRASE_ENV,
    NodeConfig,
    parse_pull_from,
    validate_country,
)
from permitnet.node.errors import NodeError
from permitnet.node.keystore import SigningKey, generate_seed, is_plaintext, load_key, save_key
from permitnet.node.store import Store
from permitnet.protocol.errors import ProtocolError
from permitnet.protocol.registry_requests import build_enrollment_request
from permitnet.protocol.registry_root import RootMetadata
from permitnet.tools.cli import CliError
from permitnet.tools.node_user_cli import register_users
from permitnet.tools.ops_cli import node_group, ops_attach, ops_serve_options

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

__all__ = ["register"]

_log = logging.getLogger(__name__)
ROOT_FILE: Final = "registry-root.cbor"
ENROLLMENT_FILE: Final = "enrollment-request.cose"
_WARNING: Final = (
    "WARNING: --insecure-plaintext-key stores the signing key UNENCRYPTED in {path}.\n"
    "Anyone who can read that file can sign import certificates and export authorizations\n"
    "in the name of {country}. Use it for demonstrations only, never for a real authority."
)


def _checked(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (NodeError, ProtocolError) as e:
            raise CliError(str(e)) from e

    return run


def _passphrase(env_name: str, *, confirm: bool) -> str:
    value = os.environ.get(env_name)
    if value:
        return value
    if not sys.stdin.isatty():
        raise CliError(
            f"the signing key's passphrase is needed: set {env_name} or run in a terminal"
        )
    first = getpass.getpass("Passphrase for the node's signing key: ")
    if confirm and getpass.getpass("Repeat the passphrase: ") != first:
        raise CliError("the two passphrases differ")
    if not first:
        raise CliError("the passphrase must not be empty")
    return first


def _default_authority(country: str) -> str:
    record = pycountry.countries.get(alpha_2=country)
    return f"Competent national authority of {record.name if record else country}"


def _init(args: argparse.Namespace) -> int:
    data_dir: Path = args.dir
    country = validate_country(args.country)
    if data_dir.exists() and any(data_dir.iterdir()):
        raise CliError(f"{data_dir} exists and is not empty: refusing to overwrite a node")
    try:
        root_bytes = args.registry_root.read_bytes()
    except OSError as e:
        raise CliError(f"cannot read the registry root {args.registry_root}: {e}") from e
    root = RootMetadata.verify_signed(root_bytes)
    config = NodeConfig(
        data_dir=data_dir,
        country=country,
        authority_name=args.authority or _default_authority(country),
        registry_urls=tuple(args.registry),
        registry_root=Path(ROOT_FILE),
        public_url=args.public_url or f"http://{args.host}:{args.port}",
        host=args.host,
        port=args.port,
        passphrase_env=args.passphrase_env,
        insecure_plaintext_key=args.insecure_plaintext_key,
        pull_from=parse_pull_from(args.pull_from, own_country=country),
        pull_interval_seconds=args.pull_interval,
    )
    passphrase = None
    if args.insecure_plaintext_key:
        print(_WARNING.format(path=config.key_path, country=country), file=sys.stderr)
    else:
        passphrase = _passphrase(args.passphrase_env, confirm=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.registry_root, config.registry_root_path)
    key = SigningKey.from_seed(generate_seed())
    save_key(
        config.key_path,
        key,
        passphrase=passphrase,
        insecure_plaintext=args.insecure_plaintext_key,
        cost=args.kdf_cost,
    )
    now = int(time.time())
    request = build_enrollment_request(key.seed, country=country, valid_from=now, requested_at=now)
    (data_dir / ENROLLMENT_FILE).write_bytes(request)
    config.save()
    asyncio.run(_init_database(config, key))
    print(f"node for {country} created in {data_dir}")
    print(f"  registry root version {root.version} pinned; mirrors: {', '.join(args.registry)}")
    print(f"  signing key id (kid): {key.kid.hex()}")
    print(f"  public key:           {key.public_key.hex()}")
    print(f"  enrollment request:   {data_dir / ENROLLMENT_FILE}")
    print("Send the enrollment request to the INCB registry and confirm the key id with the")
    print("registry operator by another channel (telephone, diplomatic note) before approval.")
    return 0


async def _init_database(config: NodeConfig, key: SigningKey) -> None:
    async with Store.opened(config.database_path) as store, store.transaction() as tx:
        await tx.audit(
            "operator",
            "node init",
            config.country,
            {"kid": key.kid.hex(), "plaintext_key": config.insecure_plaintext_key},
        )


def _load_config(args: argparse.Namespace) -> NodeConfig:
    config = NodeConfig.load(args.dir)
    changes: dict[str, object] = {}
    if getattr(args, "host", None) is not None:
        changes["host"] = args.host
    if getattr(args, "port", None) is not None:
        changes["port"] = args.port
    return config.with_overrides(**changes) if changes else config


def _serve(args: argparse.Namespace) -> int:
    config = _load_config(args)
    if not config.registry_root_path.is_file():
        raise CliError(f"the pinned registry root {config.registry_root_path} is missing")
    if is_plaintext(config.key_path):
        print(_WARNING.format(path=config.key_path, country=config.country), file=sys.stderr)
        key = load_key(config.key_path, passphrase=None)
    else:
        key = load_key(
            config.key_path, passphrase=_passphrase(config.passphrase_env, confirm=False)
        )
    _log.info(
        "node %s (kid %s) listening on %s:%d",
        config.country,
        key.kid.hex(),
        config.host,
        config.port,
    )
    if config.pull_from:
        _log.info(
            "pulling documents from %s every %g s (node.toml [exchange])",
            ", ".join(config.pull_from),
            config.pull_interval_seconds,
        )
    ssl_context = ops_serve_options(args)
    app = create_app(config, signing_key=key)
    ops_attach(app, args, config, key.kid)
    web.run_app(
        app,
        host=config.host,
        port=config.port,
        print=None,
        ssl_context=ssl_context,
    )
    return 0


def _token_create(args: argparse.Namespace) -> int:
    config = _load_config(args)

    async def run() -> tuple[tokens.ApiToken, str]:
        async with Store.opened(config.database_path) as store:
            return await tokens.create_token(
                store, name=args.name, actor=args.actor, scopes=args.scopes, created_by="operator"
            )

    token, secret = asyncio.run(run())
    print(
        f"token {token.id} '{token.name}' acting as {token.actor}, scopes "
        f"{','.join(sorted(token.scopes))}"
    )
    print("The secret is shown once; store it in the national system's secret store:")
    print(secret)
    return 0


def _token_list(args: argparse.Namespace) -> int:
    config = _load_config(args)

    async def run() -> list[tokens.ApiToken]:
        async with Store.opened(config.database_path) as store:
            return await tokens.list_tokens(store)

    for t in asyncio.run(run()):
        state = "active" if t.revoked_at is None else f"revoked at {t.revoked_at}"
        print(f"{t.id}  {t.name}  actor={t.actor}  scopes={','.join(sorted(t.scopes))}  {state}")
    return 0


def _token_revoke(args: argparse.Namespace) -> int:
    config = _load_config(args)

    async def run() -> None:
        async with Store.opened(config.database_path) as store:
            await tokens.revoke_token(store, args.token_id, revoked_by="operator")

    asyncio.run(run())
    print(f"token {args.token_id} revoked")
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    config = _load_config(args)
    witnessed = [audit.AuditHead.parse(text) for text in args.witnessed]

    async def run() -> int:
        async with Store.opened(config.database_path) as store:
            return await audit.verify_chain(store, witnessed=witnessed)

    rows = asyncio.run(run())
    print(f"audit log verified: {rows} rows, hash chain intact")
    for head in witnessed:
        print(f"witnessed head {head}: present, same hash")
    if not witnessed:
        print(
            "(rows cut from the end cannot be told without a head recorded earlier: "
            "--witnessed ROW:HASH, from `permitnet node audit head` or the node's log)"
        )
    return 0


def _audit_head(args: argparse.Namespace) -> int:
    config = _load_config(args)

    async def run() -> audit.AuditHead:
        async with Store.opened(config.database_path) as store:
            return await audit.head(store)

    print(asyncio.run(run()))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``node init``, ``node serve``, ``node token ...`` and ``node audit verify``."""
    node = node_group(subparsers)
    p = node.add_parser("init", help="create a node directory, its key and its database")
    p.add_argument("dir", type=Path, help="the node directory to create")
    p.add_argument("--country", required=True, help="ISO 3166-1 alpha-2 code, e.g. DE")
    p.add_argument(
        "--authority",
        help="the competent national authority's name, as printed on documents (default: "
        "'Competent national authority of COUNTRY'; edit node.toml to change it later)",
    )
    p.add_argument(
        "--registry",
        required=True,
        action="append",
        metavar="URL",
        help="registry (or mirror) URL; repeat for more mirrors",
    )
    p.add_argument(
        "--registry-root",
        required=True,
        type=Path,
        metavar="FILE",
        help="the registry's signed root metadata, obtained out of band, to pin",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8470, help="port to listen on (default 8470)")
    p.add_argument("--public-url", help="URL peers reach this node at (default http://HOST:PORT)")
    p.add_argument(
        "--pull-from",
        default="",
        metavar="XX,YY",
        help="countries whose nodes this node fetches its documents from, for a node that "
        "cannot accept inbound connections (NAT, firewall); node.toml [exchange] pull_from",
    )
    p.add_argument(
        "--pull-interval",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how often to pull from those peers (default 30)",
    )
    p.add_argument(
        "--passphrase-env",
        default=DEFAULT_PASSPHRASE_ENV,
        metavar="NAME",
        help=f"environment variable holding the key passphrase (default "
        f"{DEFAULT_PASSPHRASE_ENV}); without it, the passphrase is asked for",
    )
    p.add_argument(
        "--kdf-cost",
        choices=("moderate", "interactive"),
        default="moderate",
        help="Argon2id cost: moderate (256 MiB, default) or interactive (64 MiB, "
        "for very small machines)",
    )
    p.add_argument(
        "--insecure-plaintext-key",
        action="store_true",
        help="store the signing key UNENCRYPTED (demonstrations only)",
    )
    p.set_defaults(handler=_checked(_init))

    p = node.add_parser("serve", help="run the node")
    p.add_argument("dir", type=Path, help="the node directory")
    p.add_argument("--host", help="override the configured listen address")
    p.add_argument("--port", type=int, help="override the configured port")
    # HTTPS served directly and JSON logs (node/tls.py, node/logs.py; docs/operations.md).
    p.add_argument("--tls-cert", type=Path, metavar="FILE", help="serve HTTPS: PEM certificate")
    p.add_argument("--tls-key", type=Path, metavar="FILE", help="the certificate's PEM key")
    p.add_argument(
        "--log-format", choices=("text", "json"), default="text", help="log as text or JSON lines"
    )
    p.add_argument(
        "--discovery", action="store_true", help="announce the node on the LAN with zeroconf"
    )
    p.set_defaults(handler=_checked(_serve))

    token = node.add_parser("token", help="manage API bearer tokens").add_subparsers(
        dest="token_command", metavar="COMMAND", required=True
    )
    p = token.add_parser("create", help="create a token (the secret is shown once)")
    p.add_argument("dir", type=Path)
    p.add_argument("--name", required=True, help="what the token is for")
    p.add_argument("--actor", required=True, help="who the token acts as (audit, four eyes)")
    p.add_argument("--scopes", required=True, help="comma-separated: read, draft, sign")
    p.set_defaults(handler=_checked(_token_create))
    p = token.add_parser("list", help="list tokens (never their secrets)")
    p.add_argument("dir", type=Path)
    p.set_defaults(handler=_checked(_token_list))
    p = token.add_parser("revoke", help="revoke a token at once")
    p.add_argument("dir", type=Path)
    p.add_argument("token_id")
    p.set_defaults(handler=_checked(_token_revoke))

    audit_group = node.add_parser("audit", help="audit log").add_subparsers(
        dest="audit_command", metavar="COMMAND", required=True
    )
    p = audit_group.add_parser("verify", help="verify the audit log's hash chain")
    p.add_argument("dir", type=Path)
    p.add_argument(
        "--witnessed",
        action="append",
        default=[],
        metavar="ROW:HASH",
        help="a head recorded earlier (audit head, or the node's log): it must still be in the "
        "log with the same hash, which shows no rows were cut from the end (repeatable)",
    )
    p.set_defaults(handler=_checked(_audit_verify))
    p = audit_group.add_parser(
        "head", help="print the audit log's last row and hash, to record away from this machine"
    )
    p.add_argument("dir", type=Path)
    p.set_defaults(handler=_checked(_audit_head))

    # Web accounts from the shell (tools/node_user_cli.py): node user add|list|disable|...
    register_users(node)
