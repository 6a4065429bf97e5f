"""The rules about people on the node: roles, four eyes, account fields, passwords, throttling.

Pure except for :class:`PasswordHasher`, which hashes in a worker thread; the accounts'
storage is :mod:`permitnet.node.accounts`, which re-exports everything here.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Final

import nacl.exceptions
from nacl.pwhash import argon2id

from permitnet.node.errors import ForbiddenError, StoreError, UnauthorizedError, ValidationError

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "MAX_DISPLAY_NAME",
    "MAX_PASSWORD_BYTES",
    "MIN_PASSWORD_LENGTH",
    "ROLE_PERMISSIONS",
    "Account",
    "LoginThrottledError",
    "PasswordHasher",
    "Permission",
    "Role",
    "Session",
    "ThrottlePolicy",
    "check_four_eyes",
    "parse_roles",
    "require",
    "validate_display_name",
    "validate_password",
    "validate_username",
]


class Role(StrEnum):
    """What a person may do on the node; a person may hold several roles."""

    VIEWER = "viewer"
    CLERK = "clerk"
    OFFICER = "officer"
    ADMIN = "admin"

    @property
    def label(self) -> str:
        """The role's name as the pages show it."""
        return _ROLE_LABELS[self]


_ROLE_LABELS: Final = {
    Role.VIEWER: "Viewer",
    Role.CLERK: "Clerk",
    Role.OFFICER: "Signing officer",
    Role.ADMIN: "Administrator",
}


class Permission(StrEnum):
    """One kind of action the pages guard."""

    VIEW = "view"
    DRAFT = "draft"
    SIGN = "sign"
    ADMINISTER = "administer"


#: Signing officers may also prepare drafts, but never approve their own (four eyes).
ROLE_PERMISSIONS: Final[dict[Role, frozenset[Permission]]] = {
    Role.VIEWER: frozenset({Permission.VIEW}),
    Role.CLERK: frozenset({Permission.VIEW, Permission.DRAFT}),
    Role.OFFICER: frozenset({Permission.VIEW, Permission.DRAFT, Permission.SIGN}),
    Role.ADMIN: frozenset({Permission.VIEW, Permission.ADMINISTER}),
}

_USERNAME: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
MIN_PASSWORD_LENGTH: Final = 12
MAX_PASSWORD_BYTES: Final = 1024
MAX_DISPLAY_NAME: Final = 100


class LoginThrottledError(UnauthorizedError):
    """Too many failed logins for this name or address: refused until the lock expires (429)."""

    status_hint = 429
    code = "login_throttled"

    def __init__(self, retry_after: int) -> None:
        minutes = max(1, -(-retry_after // 60))
        super().__init__(
            f"too many failed login attempts: try again in {minutes} minute"
            f"{'s' if minutes != 1 else ''}"
        )
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    """A person who may log in to the node's pages."""

    username: str
    display_name: str
    roles: frozenset[Role]
    active: bool = True

    @property
    def permissions(self) -> frozenset[Permission]:
        """Everything this account's roles allow (nothing when deactivated)."""
        if not self.active:
            return frozenset()
        return frozenset().union(*(ROLE_PERMISSIONS[r] for r in self.roles))

    def can(self, permission: Permission) -> bool:
        """Whether the account may take actions that need ``permission``."""
        return permission in self.permissions


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """A logged-in browser: the account and the CSRF token its forms must carry."""

    account: Account
    csrf_token: str
    expires_at: int

    def check_csrf(self, submitted: str | None) -> None:
        """Compare a form's CSRF token with the session's in constant time.

        Raises:
            ForbiddenError: The token is missing or does not match.
        """
        if not submitted or not hmac.compare_digest(submitted.encode(), self.csrf_token.encode()):
            raise ForbiddenError(
                "this form was not sent from a page of this node (missing or wrong CSRF token)"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class ThrottlePolicy:
    """How many failures lock a login name or address, and for how long."""

    max_failures: int = 5
    window_seconds: int = 15 * 60
    first_lock_seconds: int = 60
    max_lock_seconds: int = 60 * 60
    #: An address may try more names than one name may be tried (offices share an address).
    max_failures_per_address: int = 20

    def lock_seconds(self, failures: int, limit: int) -> int:
        """The lock after ``failures`` failures: doubling from the first lock, capped."""
        if failures < limit:
            return 0
        return int(
            min(self.max_lock_seconds, self.first_lock_seconds * 2 ** min(failures - limit, 16))
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PasswordHasher:
    """Argon2id parameters; the defaults are libsodium's interactive limits (64 MiB, 2 passes)."""

    opslimit: int = argon2id.OPSLIMIT_INTERACTIVE
    memlimit: int = argon2id.MEMLIMIT_INTERACTIVE

    async def hash(self, password: str) -> str:
        """Hash ``password`` in a worker thread (it takes tens of milliseconds by design)."""
        data = password.encode()
        hashed = await asyncio.to_thread(
            argon2id.str, data, opslimit=self.opslimit, memlimit=self.memlimit
        )
        return hashed.decode("ascii")

    async def verify(self, hashed: str, password: str) -> bool:
        """Whether ``password`` matches ``hashed``; a malformed hash never matches."""
        try:
            return await asyncio.to_thread(argon2id.verify, hashed.encode(), password.encode())
        except nacl.exceptions.InvalidkeyError:
            return False
        except nacl.exceptions.CryptoError as e:
            raise StoreError("a stored password hash is malformed") from e


def require(account: Account, permission: Permission) -> None:
    """Refuse unless ``account`` may take actions needing ``permission``.

    Raises:
        ForbiddenError: The account's roles do not allow it.
    """
    if not account.can(permission):
        raise ForbiddenError(
            f"{account.username} may not {permission.value}: this needs the role "
            + " or ".join(r.label for r, p in ROLE_PERMISSIONS.items() if permission in p)
        )


def check_four_eyes(*, approver: str, preparer: str) -> None:
    """Refuse an approval by the person who prepared the draft.

    Raises:
        ForbiddenError: ``approver`` prepared the draft.
    """
    if approver == preparer:
        raise ForbiddenError(
            "four eyes: a draft must be approved by a signing officer other than the person "
            f"who prepared it ({preparer})"
        )


def validate_username(username: str) -> str:
    """Return ``username`` if it is 1-64 characters of a-z, 0-9, '.', '_' or '-'.

    Raises:
        ValidationError: It is not.
    """
    if not _USERNAME.fullmatch(username):
        raise ValidationError(
            "a user name is 1 to 64 characters: lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return username


def validate_password(password: str, *, username: str) -> str:
    """Return ``password`` if it is long enough and not the user name.

    Raises:
        ValidationError: It is too short, too long or contains the user name.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise ValidationError(f"a password is at most {MAX_PASSWORD_BYTES} bytes")
    if username and username in password.lower():
        raise ValidationError("a password must not contain the user name")
    return password


def validate_display_name(name: str) -> str:
    """Return the trimmed display name.

    Raises:
        ValidationError: It is empty, too long or holds control characters.
    """
    name = name.strip()
    if not name or len(name) > MAX_DISPLAY_NAME:
        raise ValidationError(f"a full name is 1 to {MAX_DISPLAY_NAME} characters")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise ValidationError("a full name must not contain control characters")
    return name


def parse_roles(values: Iterable[str]) -> frozenset[Role]:
    """Parse role names.

    Raises:
        ValidationError: A name is not a role, or there is none.
    """
    roles = set()
    for value in values:
        try:
            roles.add(Role(value))
        except ValueError as e:
            known = ", ".join(r.value for r in Role)
            raise ValidationError(f"unknown role {value!r}; roles are {known}") from e
    if not roles:
        raise ValidationError("give the account at least one role")
    return frozenset(roles)
