"""``permitnet node user add|list|disable|enable|reset-password``: web accounts from the shell.

The operator of the machine a node runs on can make the first administrator (or a new one, when
every administrator has forgotten their password) without the one-time ``/setup`` code, and
manage accounts when the web pages are out of reach. Passwords come from a prompt or from an
environment variable named by ``--password-env``, never from the command line, where other
users of the machine could read them in the process list and the shell history. Every change is
written to the node's audit log with the actor ``cli:<operating-system user>``.

The commands work on a running node too: accounts have their own short transactions in the
node's SQLite file (WAL), and disabling an account or resetting its password ends its sessions.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

from permitnet.node.accounts import (
    Account,
    AccountStore,
    Role,
    validate_display_name,
    validate_username,
)
from permitnet.node.config import NodeConfig
from permitnet.node.errors import NodeError, ValidationError
from permitnet.node.store import Store
from permitnet.protocol.errors import ProtocolError
from permitnet.tools.cli import CliError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Awaitable, Callable

__all__ = ["cli_actor", "register_users"]

_ROLES: Final = tuple(r.value for r in Role)
_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def cli_actor() -> str:
    """The audit actor for changes made on the command line: ``cli:<os user>``."""
    try:
        name = getpass.getuser()
    except (OSError, KeyError):
        # No login name in the environment and none in the password database (some containers).
        name = f"uid-{os.getuid()}"
    return f"cli:{name}"


def _read_password(args: argparse.Namespace, username: str) -> str:
    """Read the new password from ``--password-env`` or, in a terminal, from a prompt.

    Raises:
        CliError: the variable is unset or empty, there is no terminal to ask in, or the two
            typed passwords differ.
    """
    if args.password_env is not None:
        if not _ENV_NAME.fullmatch(args.password_env):
            # Not echoed: whoever typed a password here should not see it printed back.
            raise CliError(
                "--password-env takes the NAME of an environment variable (letters, digits "
                "and _), not the password itself"
            )
        value = os.environ.get(args.password_env)
        if not value:
            raise CliError(f"the environment variable {args.password_env} is not set or empty")
        return value
    if not sys.stdin.isatty():
        raise CliError("the password is needed: name an environment variable with --password-env")
    first = getpass.getpass(f"New password for {username}: ")
    if getpass.getpass("Repeat the password: ") != first:
        raise CliError("the two passwords differ")
    if not first:
        raise CliError("the password must not be empty")
    return first


def _run(
    args: argparse.Namespace,
    change: Callable[[AccountStore], Awaitable[tuple[str, str, dict[str, object]] | None]],
) -> None:
    """Open the node's accounts and store, apply ``change`` and audit what it reports.

    ``change`` returns ``(action, subject, detail)`` for the audit log, or None for a read.

    Raises:
        CliError: the directory is not a node, or the change was refused.
    """
    config = NodeConfig.load(args.dir)
    if not config.database_path.is_file():
        raise CliError(f"{config.database_path} is missing: is {args.dir} a node directory?")

    async def run() -> None:
        # The store is opened first: it applies the node's migrations and owns the audit log.
        async with Store.opened(config.database_path) as store:
            async with AccountStore.open(config.database_path) as accounts:
                audited = await change(accounts)
            if audited is not None:
                action, subject, detail = audited
                async with store.transaction() as tx:
                    await tx.audit(cli_actor(), action, subject, {"via": "cli", **detail})

    try:
        asyncio.run(run())
    except (NodeError, ProtocolError) as e:
        raise CliError(str(e)) from e


def _describe(account: Account) -> str:
    roles = ",".join(sorted(r.value for r in account.roles))
    state = "active" if account.active else "disabled"
    return f"{account.username}  {account.display_name}  roles={roles}  {state}"


def _add(args: argparse.Namespace) -> int:
    roles = sorted(set(args.role))
    # Everything is checked before the password is asked for, so that a typo costs no prompt.
    unknown = [r for r in roles if r not in _ROLES]
    if unknown:
        raise CliError(f"unknown role {unknown[0]!r}: choose from {', '.join(_ROLES)}")
    display_name = args.name if args.name is not None else args.username
    try:
        validate_username(args.username)
        validate_display_name(display_name)
    except ValidationError as e:
        raise CliError(str(e)) from e
    password = _read_password(args, args.username)

    async def change(accounts: AccountStore) -> tuple[str, str, dict[str, object]]:
        account = await accounts.create_user(
            username=args.username,
            display_name=display_name,
            password=password,
            roles=roles,
        )
        print(f"account created: {_describe(account)}")
        return "create account", f"account:{account.username}", {"roles": roles}

    _run(args, change)
    return 0


def _list(args: argparse.Namespace) -> int:
    async def change(accounts: AccountStore) -> None:
        users = await accounts.list_users()
        if not users:
            print("no accounts yet: add one with 'permitnet node user add DIR NAME --role admin'")
        for account in users:
            print(_describe(account))

    _run(args, change)
    return 0


def _set_active(active: bool) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        async def change(accounts: AccountStore) -> tuple[str, str, dict[str, object]]:
            account = await accounts.update_user(args.username, active=active)
            print(f"account {'enabled' if active else 'disabled'}: {_describe(account)}")
            admins = [a for a in await accounts.list_users() if a.active and Role.ADMIN in a.roles]
            if not admins:
                print(
                    "warning: no active administrator remains; add one with "
                    "'permitnet node user add DIR NAME --role admin'",
                    file=sys.stderr,
                )
            action = "account activate" if active else "account deactivate"
            return action, f"account:{account.username}", {}

        _run(args, change)
        return 0

    return handler


def _reset_password(args: argparse.Namespace) -> int:
    async def check(accounts: AccountStore) -> None:
        await accounts.get_user(args.username)

    # Say that the account does not exist before asking for a password for it.
    _run(args, check)
    password = _read_password(args, args.username)

    async def change(accounts: AccountStore) -> tuple[str, str, dict[str, object]]:
        await accounts.set_password(args.username, password)
        print(f"password of {args.username} replaced; the account's sessions have ended")
        return "account password", f"account:{args.username}", {}

    _run(args, change)
    return 0


def register_users(node: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``node user ...`` to the ``node`` group."""
    group = node.add_parser(
        "user",
        help="manage the web accounts of the node's officials",
        description="Add, list, disable and enable web accounts and reset their passwords. "
        "Passwords are read from a prompt or from the environment variable named by "
        "--password-env, never from the command line. Each change is audited as cli:<os user>.",
    )
    users = group.add_subparsers(dest="user_command", metavar="COMMAND", required=True)

    # No abbreviated options: "--password x" must not be taken for "--password-env x".
    p = users.add_parser("add", help="create an account", allow_abbrev=False)
    p.add_argument("dir", type=Path, help="the node directory")
    p.add_argument("username", help="the login name (letters, digits, . _ -)")
    p.add_argument(
        "--role",
        required=True,
        action="append",
        metavar="{" + ",".join(_ROLES) + "}",
        help="a role; repeat for several (four eyes: a clerk drafts, an officer signs)",
    )
    p.add_argument("--name", help="the person's full name, as the pages show it")
    p.add_argument(
        "--password-env",
        metavar="NAME",
        help="read the password from this environment variable instead of a prompt",
    )
    p.set_defaults(handler=_add)

    p = users.add_parser("list", help="list accounts (never their passwords)")
    p.add_argument("dir", type=Path, help="the node directory")
    p.set_defaults(handler=_list)

    for command, active, text in (
        ("disable", False, "disable an account at once and end its sessions"),
        ("enable", True, "enable a disabled account again"),
    ):
        p = users.add_parser(command, help=text)
        p.add_argument("dir", type=Path, help="the node directory")
        p.add_argument("username")
        p.set_defaults(handler=_set_active(active))

    p = users.add_parser(
        "reset-password",
        help="set a new password for an account and end its sessions",
        allow_abbrev=False,
    )
    p.add_argument("dir", type=Path, help="the node directory")
    p.add_argument("username")
    p.add_argument(
        "--password-env",
        metavar="NAME",
        help="read the new password from this environment variable instead of a prompt",
    )
    p.set_defaults(handler=_reset_password)
