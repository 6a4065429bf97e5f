"""People who use the node's web pages: accounts, roles, sessions, CSRF and login throttling.

Passwords are hashed with Argon2id (PyNaCl ``pwhash``), off the event loop. A session is a
random token in an HttpOnly cookie; only its SHA-256 is stored, so a copy of the database does
not let anyone log in. Each session carries its own CSRF token (the synchronizer-token pattern).
Repeated failed logins lock the account name and the client address for a growing delay, and the
failures are counted in the database so that a restart does not reset them.

The accounts live in their own tables of the node's SQLite file and use their own connection:
their short single-statement transactions never interleave with the store's.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import aiosqlite

from permitnet.node.account_rules import (
    MAX_DISPLAY_NAME,
    MAX_PASSWORD_BYTES,
    MIN_PASSWORD_LENGTH,
    ROLE_PERMISSIONS,
    Account,
    LoginThrottledError,
    PasswordHasher,
    Permission,
    Role,
    Session,
    ThrottlePolicy,
    check_four_eyes,
    parse_roles,
    require,
    validate_display_name,
    validate_password,
    validate_username,
)
from permitnet.node.errors import ConflictError, NotFoundError, StoreError, UnauthorizedError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable
    from pathlib import Path

__all__ = [
    "MAX_DISPLAY_NAME",
    "MAX_PASSWORD_BYTES",
    "MIN_PASSWORD_LENGTH",
    "ROLE_PERMISSIONS",
    "Account",
    "AccountStore",
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

_TOKEN_BYTES: Final = 32


#: A session's last use is written at most this often (seconds), see ``AccountStore.session``.
SESSION_TOUCH_SECONDS: Final = 60


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS account_users (
    username TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    roles TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    password_changed_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS account_sessions (
    token_hash BLOB PRIMARY KEY,
    username TEXT NOT NULL REFERENCES account_users(username) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS account_sessions_user ON account_sessions(username);
CREATE TABLE IF NOT EXISTS account_login_failures (
    key TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    locked_until INTEGER NOT NULL
);
"""


@dataclass(kw_only=True)
class AccountStore:
    """The node's accounts, sessions and login failures, in the node's SQLite file.

    Open with :meth:`open`; every method is a short transaction of its own.
    """

    db: aiosqlite.Connection
    hasher: PasswordHasher = field(default_factory=PasswordHasher)
    throttle: ThrottlePolicy = field(default_factory=ThrottlePolicy)
    clock: Callable[[], float] = time.time
    idle_timeout: int = 30 * 60
    absolute_timeout: int = 12 * 60 * 60
    _dummy_hash: str = ""

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        path: Path,
        *,
        hasher: PasswordHasher | None = None,
        throttle: ThrottlePolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> AsyncIterator[AccountStore]:
        """Open (creating if needed) the account tables in the database at ``path``.

        Raises:
            StoreError: The database cannot be opened or migrated.
        """
        try:
            db = await aiosqlite.connect(path, isolation_level=None)
        except (sqlite3.Error, OSError) as e:
            raise StoreError(f"cannot open the account database {path}: {e}") from e
        db.row_factory = sqlite3.Row
        try:
            try:
                await db.execute("PRAGMA busy_timeout = 5000")
                await db.execute("PRAGMA foreign_keys = ON")
                await db.executescript(_SCHEMA)
            except sqlite3.Error as e:
                raise StoreError(f"cannot prepare the account tables: {e}") from e
            store = cls(
                db=db,
                hasher=hasher or PasswordHasher(),
                throttle=throttle or ThrottlePolicy(),
                clock=clock,
            )
            # Unknown names are checked against this hash too, so that the time a failed
            # login takes does not tell whether the name exists.
            store._dummy_hash = await store.hasher.hash(secrets.token_urlsafe(16))
            yield store
        finally:
            await db.close()

    def _now(self) -> int:
        return int(self.clock())

    async def _execute(self, sql: str, params: tuple[object, ...] = ()) -> int:
        try:
            cursor = await self.db.execute(sql, params)
        except sqlite3.IntegrityError as e:
            raise ConflictError(str(e)) from e
        except sqlite3.Error as e:
            raise StoreError(f"account database: {e}") from e
        return cursor.rowcount

    async def _fetchall(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        try:
            rows = await self.db.execute_fetchall(sql, params)
        except sqlite3.Error as e:
            raise StoreError(f"account database: {e}") from e
        return list(rows)

    # Users ------------------------------------------------------------------------------

    async def create_user(
        self, *, username: str, display_name: str, password: str, roles: Iterable[str]
    ) -> Account:
        """Create an account.

        Raises:
            ValidationError: A field is invalid.
            ConflictError: The user name is taken.
        """
        account = Account(
            username=validate_username(username),
            display_name=validate_display_name(display_name),
            roles=parse_roles(roles),
        )
        hashed = await self.hasher.hash(validate_password(password, username=username))
        now = self._now()
        try:
            await self._execute(
                "INSERT INTO account_users VALUES (?, ?, ?, ?, 1, ?, ?)",
                (username, account.display_name, hashed, _roles_text(account.roles), now, now),
            )
        except ConflictError as e:
            raise ConflictError(f"the user name {username} is already taken") from e
        return account

    async def get_user(self, username: str) -> Account:
        """Return one account.

        Raises:
            NotFoundError: There is no such account.
        """
        rows = await self._fetchall(
            "SELECT username, display_name, roles, active FROM account_users WHERE username = ?",
            (username,),
        )
        if not rows:
            raise NotFoundError(f"no account named {username}")
        return _account(rows[0])

    async def list_users(self) -> list[Account]:
        """Return every account, by user name."""
        rows = await self._fetchall(
            "SELECT username, display_name, roles, active FROM account_users ORDER BY username"
        )
        return [_account(r) for r in rows]

    async def count_users(self) -> int:
        """Return how many accounts exist (none before the first administrator is made)."""
        rows = await self._fetchall("SELECT count(*) FROM account_users")
        return int(rows[0][0])

    async def update_user(
        self, username: str, *, roles: Iterable[str] | None = None, active: bool | None = None
    ) -> Account:
        """Change an account's roles or deactivate/reactivate it; deactivation ends its sessions.

        Raises:
            ValidationError: A role is unknown.
            NotFoundError: There is no such account.
        """
        current = await self.get_user(username)
        new_roles = parse_roles(roles) if roles is not None else current.roles
        new_active = current.active if active is None else active
        await self._execute(
            "UPDATE account_users SET roles = ?, active = ? WHERE username = ?",
            (_roles_text(new_roles), int(new_active), username),
        )
        if not new_active:
            await self._execute("DELETE FROM account_sessions WHERE username = ?", (username,))
        return await self.get_user(username)

    async def change_own_password(self, username: str, current: str, new: str) -> None:
        """Let a person replace their own password, after proving they know the current one.

        A wrong current password counts as a failed login for throttling. All the person's
        sessions end, this one included.

        Raises:
            LoginThrottledError: Too many recent failures for this name.
            UnauthorizedError: The current password is wrong.
            ValidationError: The new password is too weak.
        """
        key = f"user:{username.lower()[:64]}"
        await self._check_throttle((key, key))
        rows = await self._fetchall(
            "SELECT password_hash FROM account_users WHERE username = ?", (username,)
        )
        if not rows or not await self.hasher.verify(rows[0]["password_hash"], current):
            await self._record_failure((key,))
            raise UnauthorizedError("the current password is wrong")
        await self.set_password(username, new)

    async def set_password(self, username: str, password: str) -> None:
        """Replace an account's password and end all its sessions.

        Raises:
            ValidationError: The password is too weak.
            NotFoundError: There is no such account.
        """
        await self.get_user(username)
        hashed = await self.hasher.hash(validate_password(password, username=username))
        await self._execute(
            "UPDATE account_users SET password_hash = ?, password_changed_at = ? "
            "WHERE username = ?",
            (hashed, self._now(), username),
        )
        await self._execute("DELETE FROM account_sessions WHERE username = ?", (username,))

    # Login and sessions -------------------------------------------------------------------

    async def login(self, username: str, password: str, *, address: str) -> tuple[str, Session]:
        """Check a password and open a session; return the cookie token and the session.

        Raises:
            LoginThrottledError: Too many recent failures for this name or address.
            UnauthorizedError: The name or password is wrong, or the account is deactivated.
        """
        keys = (f"user:{username.lower()[:64]}", f"address:{address}")
        await self._check_throttle(keys)
        rows = await self._fetchall(
            "SELECT username, display_name, roles, active, password_hash FROM account_users "
            "WHERE username = ?",
            (username,),
        )
        hashed = rows[0]["password_hash"] if rows else self._dummy_hash
        ok = await self.hasher.verify(hashed, password) and bool(rows)
        if not ok:
            await self._record_failure(keys)
            raise UnauthorizedError("wrong user name or password")
        account = _account(rows[0])
        if not account.active:
            raise UnauthorizedError(f"the account {username} is deactivated")
        await self._execute("DELETE FROM account_login_failures WHERE key = ?", (keys[0],))
        token = secrets.token_urlsafe(_TOKEN_BYTES)
        csrf = secrets.token_urlsafe(_TOKEN_BYTES)
        now = self._now()
        await self._execute(
            "INSERT INTO account_sessions VALUES (?, ?, ?, ?, ?)",
            (_token_hash(token), account.username, csrf, now, now),
        )
        return token, Session(account=account, csrf_token=csrf, expires_at=now + self.idle_timeout)

    async def session(self, token: str) -> Session:
        """Return the live session for a cookie token and mark it as just used.

        Raises:
            UnauthorizedError: No such session, or it has expired, or its account is deactivated.
        """
        now = self._now()
        token_hash = _token_hash(token)
        rows = await self._fetchall(
            "SELECT u.username, u.display_name, u.roles, u.active, s.csrf_token, s.created_at, "
            "s.last_seen FROM account_sessions s JOIN account_users u USING (username) "
            "WHERE s.token_hash = ?",
            (token_hash,),
        )
        if not rows:
            raise UnauthorizedError("you are not logged in, or your session has ended")
        row = rows[0]
        account = _account(row)
        expired = (
            now - row["last_seen"] > self.idle_timeout
            or now - row["created_at"] > self.absolute_timeout
        )
        if expired or not account.active:
            await self.logout(token)
            raise UnauthorizedError("your session has expired: please log in again")
        # Record the use at most once a minute, not on every page and form: the idle timeout
        # (30 minutes) then ends at most a minute early, and reading pages writes nothing.
        if now - row["last_seen"] >= SESSION_TOUCH_SECONDS:
            await self._execute(
                "UPDATE account_sessions SET last_seen = ? WHERE token_hash = ?",
                (now, token_hash),
            )
        expires = min(now + self.idle_timeout, row["created_at"] + self.absolute_timeout)
        return Session(account=account, csrf_token=row["csrf_token"], expires_at=expires)

    async def logout(self, token: str) -> None:
        """End the session for a cookie token (nothing happens if there is none)."""
        await self._execute(
            "DELETE FROM account_sessions WHERE token_hash = ?", (_token_hash(token),)
        )

    async def _check_throttle(self, keys: tuple[str, str]) -> None:
        now = self._now()
        rows = await self._fetchall(
            "SELECT max(locked_until) FROM account_login_failures WHERE key IN (?, ?)", keys
        )
        locked_until = rows[0][0]
        if locked_until is not None and locked_until > now:
            raise LoginThrottledError(locked_until - now)

    async def _record_failure(self, keys: tuple[str, ...]) -> None:
        # The first key is a user name (the stricter limit), a second one a client address.
        now = self._now()
        policy = self.throttle
        limits = (policy.max_failures, policy.max_failures_per_address)
        for key, limit in zip(keys, limits[: len(keys)], strict=True):
            rows = await self._fetchall(
                "SELECT failures, window_start FROM account_login_failures WHERE key = ?", (key,)
            )
            failures, start = (rows[0][0], rows[0][1]) if rows else (0, now)
            if now - start > policy.window_seconds:
                failures, start = 0, now
            failures += 1
            lock = policy.lock_seconds(failures, limit)
            await self._execute(
                "INSERT OR REPLACE INTO account_login_failures VALUES (?, ?, ?, ?)",
                (key, failures, start, now + lock if lock else 0),
            )


def _roles_text(roles: frozenset[Role]) -> str:
    return ",".join(sorted(r.value for r in roles))


def _account(row: sqlite3.Row) -> Account:
    try:
        roles = frozenset(Role(r) for r in row["roles"].split(",") if r)
    except ValueError as e:
        raise StoreError(f"account {row['username']} has an unknown role") from e
    return Account(
        username=row["username"],
        display_name=row["display_name"],
        roles=roles,
        active=bool(row["active"]),
    )
