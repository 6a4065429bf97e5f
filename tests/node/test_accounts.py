"""Accounts: Argon2id passwords, roles, sessions, CSRF, four eyes and login throttling."""

from __future__ import annotations

import hashlib
import sqlite3
from typing import TYPE_CHECKING

import pytest
from nacl.pwhash import argon2id

from permitnet.node.accounts import (
    SESSION_TOUCH_SECONDS,
    Account,
    AccountStore,
    LoginThrottledError,
    PasswordHasher,
    Permission,
    Role,
    ThrottlePolicy,
    check_four_eyes,
    require,
)
from permitnet.node.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    UnauthorizedError,
    ValidationError,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

FAST = PasswordHasher(opslimit=argon2id.OPSLIMIT_MIN, memlimit=argon2id.MEMLIMIT_MIN)
PASSWORD = "correct horse battery"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(tmp_path: Path, clock: Clock) -> AsyncIterator[AccountStore]:
    async with AccountStore.open(tmp_path / "node.db", hasher=FAST, clock=clock) as s:
        yield s


async def test_password_is_stored_as_argon2id_hash(store: AccountStore, tmp_path: Path) -> None:
    await store.create_user(
        username="amina", display_name="Amina K.", password=PASSWORD, roles=["clerk"]
    )
    with sqlite3.connect(tmp_path / "node.db") as db:
        (stored,) = db.execute("SELECT password_hash FROM account_users").fetchone()
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


async def test_default_hasher_uses_interactive_limits() -> None:
    hashed = await PasswordHasher().hash(PASSWORD)
    assert "m=65536,t=2" in hashed
    assert await PasswordHasher().verify(hashed, PASSWORD)
    assert not await PasswordHasher().verify(hashed, PASSWORD + "x")


async def test_login_session_and_logout(store: AccountStore, tmp_path: Path) -> None:
    await store.create_user(
        username="amina", display_name="Amina K.", password=PASSWORD, roles=["clerk"]
    )
    token, session = await store.login("amina", PASSWORD, address="127.0.0.1")
    assert session.account.roles == {Role.CLERK}
    again = await store.session(token)
    assert again.csrf_token == session.csrf_token
    with sqlite3.connect(tmp_path / "node.db") as db:
        (stored,) = db.execute("SELECT token_hash FROM account_sessions").fetchone()
    assert stored == hashlib.sha256(token.encode()).digest()
    await store.logout(token)
    with pytest.raises(UnauthorizedError):
        await store.session(token)


async def test_each_login_gets_a_new_session(store: AccountStore) -> None:
    await store.create_user(username="amina", display_name="A", password=PASSWORD, roles=["clerk"])
    t1, s1 = await store.login("amina", PASSWORD, address="a")
    t2, s2 = await store.login("amina", PASSWORD, address="a")
    assert t1 != t2
    assert s1.csrf_token != s2.csrf_token


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("amina", "wrong password here"),
        ("nobody", PASSWORD),
        ("AMINA", PASSWORD),
        ("", ""),
    ],
    ids=["wrong-password", "unknown-user", "case-differs", "empty"],
)
async def test_bad_credentials_are_refused(
    store: AccountStore, username: str, password: str
) -> None:
    await store.create_user(username="amina", display_name="A", password=PASSWORD, roles=["clerk"])
    with pytest.raises(UnauthorizedError, match="wrong user name or password"):
        await store.login(username, password, address="a")


async def test_idle_and_absolute_session_expiry(store: AccountStore, clock: Clock) -> None:
    await store.create_user(username="amina", display_name="A", password=PASSWORD, roles=["clerk"])
    token, _ = await store.login("amina", PASSWORD, address="a")
    clock.now += store.idle_timeout + 1
    with pytest.raises(UnauthorizedError, match="expired"):
        await store.session(token)
    # Kept alive by use, a session still ends at its absolute timeout.
    start = clock.now
    token, _ = await store.login("amina", PASSWORD, address="a")
    step = store.idle_timeout - 60
    while clock.now - start + step <= store.absolute_timeout:
        clock.now += step
        await store.session(token)
    clock.now = start + store.absolute_timeout + 1
    with pytest.raises(UnauthorizedError, match="expired"):
        await store.session(token)


async def test_session_use_is_written_at_most_once_a_minute(
    store: AccountStore, clock: Clock
) -> None:
    await store.create_user(username="amina", display_name="A", password=PASSWORD, roles=["clerk"])
    token, _ = await store.login("amina", PASSWORD, address="a")

    async def last_seen() -> int:
        (row,) = await store._fetchall("SELECT last_seen FROM account_sessions")
        return int(row[0])

    logged_in = clock.now
    clock.now += SESSION_TOUCH_SECONDS - 1
    await store.session(token)
    assert await last_seen() == logged_in  # pages read within the minute write nothing
    clock.now += 1
    await store.session(token)
    assert await last_seen() == clock.now
    # Used every 59 seconds for longer than the idle timeout, the session stays alive.
    for _ in range(store.idle_timeout // (SESSION_TOUCH_SECONDS - 1) + 2):
        clock.now += SESSION_TOUCH_SECONDS - 1
        await store.session(token)


async def test_throttling_locks_the_name_then_releases(store: AccountStore, clock: Clock) -> None:
    await store.create_user(username="amina", display_name="A", password=PASSWORD, roles=["clerk"])
    policy = store.throttle
    for _ in range(policy.max_failures):
        with pytest.raises(UnauthorizedError):
            await store.login("amina", "not the password", address=f"10.0.0.{_}")
    # Locked: even the right password is refused, from any address.
    with pytest.raises(LoginThrottledError) as caught:
        await store.login("amina", PASSWORD, address="192.0.2.1")
    assert caught.value.status_hint == 429
    assert caught.value.retry_after == policy.first_lock_seconds
    assert "try again in 1 minute" in str(caught.value)
    clock.now += policy.first_lock_seconds
    await store.login("amina", PASSWORD, address="192.0.2.1")


async def test_throttle_lock_doubles_and_survives_restart(tmp_path: Path, clock: Clock) -> None:
    policy = ThrottlePolicy(max_failures=2, first_lock_seconds=10, max_lock_seconds=25)
    async with AccountStore.open(
        tmp_path / "n.db", hasher=FAST, clock=clock, throttle=policy
    ) as store:
        await store.create_user(
            username="amina", display_name="A", password=PASSWORD, roles=["clerk"]
        )
        for _ in range(2):
            with pytest.raises(UnauthorizedError):
                await store.login("amina", "not the password", address="a")
    async with AccountStore.open(
        tmp_path / "n.db", hasher=FAST, clock=clock, throttle=policy
    ) as store:
        with pytest.raises(LoginThrottledError) as caught:
            await store.login("amina", PASSWORD, address="b")
        assert caught.value.retry_after == 10
        clock.now += 10
        with pytest.raises(UnauthorizedError):
            await store.login("amina", "still wrong", address="a")
        with pytest.raises(LoginThrottledError) as caught:
            await store.login("amina", PASSWORD, address="b")
        assert caught.value.retry_after == 20
        clock.now += 20
        with pytest.raises(UnauthorizedError):
            await store.login("amina", "still wrong", address="a")
        with pytest.raises(LoginThrottledError) as caught:
            await store.login("amina", PASSWORD, address="b")
        assert caught.value.retry_after == 25  # capped


async def test_throttling_by_address_covers_many_names(store: AccountStore) -> None:
    for i in range(store.throttle.max_failures_per_address):
        with pytest.raises(UnauthorizedError):
            await store.login(f"guess{i}", "whatever password", address="198.51.100.7")
    with pytest.raises(LoginThrottledError):
        await store.login("someone-else", "whatever password", address="198.51.100.7")


async def test_deactivation_ends_sessions_and_refuses_login(store: AccountStore) -> None:
    await store.create_user(username="amina", display_name="A", password=PASSWORD, roles=["clerk"])
    token, _ = await store.login("amina", PASSWORD, address="a")
    account = await store.update_user("amina", active=False)
    assert account.permissions == frozenset()
    with pytest.raises(UnauthorizedError):
        await store.session(token)
    with pytest.raises(UnauthorizedError, match="deactivated"):
        await store.login("amina", PASSWORD, address="a")


async def test_password_change_ends_sessions(store: AccountStore) -> None:
    await store.create_user(username="amina", display_name="A", password=PASSWORD, roles=["clerk"])
    token, _ = await store.login("amina", PASSWORD, address="a")
    await store.set_password("amina", "another long passphrase")
    with pytest.raises(UnauthorizedError):
        await store.session(token)
    with pytest.raises(UnauthorizedError):
        await store.login("amina", PASSWORD, address="a")
    await store.login("amina", "another long passphrase", address="a")


async def test_role_change_applies_to_live_sessions(store: AccountStore) -> None:
    await store.create_user(username="amina", display_name="A", password=PASSWORD, roles=["clerk"])
    token, _ = await store.login("amina", PASSWORD, address="a")
    await store.update_user("amina", roles=["officer"])
    assert (await store.session(token)).account.can(Permission.SIGN)


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"username": "Amina"}, ValidationError, "user name"),
        ({"username": ""}, ValidationError, "user name"),
        ({"username": "a b"}, ValidationError, "user name"),
        ({"username": "-amina"}, ValidationError, "user name"),
        ({"username": "a" * 65}, ValidationError, "user name"),
        ({"password": "short"}, ValidationError, "at least 12"),
        ({"password": "x" * 1025}, ValidationError, "at most 1024"),
        ({"password": "my name is amina!"}, ValidationError, "user name"),
        ({"display_name": "  "}, ValidationError, "full name"),
        ({"display_name": "x" * 101}, ValidationError, "full name"),
        ({"display_name": "bad\x00name"}, ValidationError, "control"),
        ({"roles": []}, ValidationError, "at least one role"),
        ({"roles": ["superuser"]}, ValidationError, "unknown role"),
    ],
    ids=[
        "upper-case-name",
        "empty-name",
        "space-in-name",
        "leading-dash",
        "name-too-long",
        "password-short",
        "password-long",
        "password-holds-name",
        "blank-display-name",
        "display-name-long",
        "display-name-control",
        "no-roles",
        "unknown-role",
    ],
)
async def test_bad_account_fields_are_refused(
    store: AccountStore, fields: dict[str, object], error: type[Exception], message: str
) -> None:
    values: dict[str, object] = {
        "username": "amina",
        "display_name": "Amina K.",
        "password": PASSWORD,
        "roles": ["clerk"],
    }
    values.update(fields)
    with pytest.raises(error, match=message):
        await store.create_user(**values)  # type: ignore[arg-type]
    assert await store.count_users() == 0


async def test_duplicate_and_missing_users(store: AccountStore) -> None:
    await store.create_user(username="amina", display_name="A", password=PASSWORD, roles=["clerk"])
    with pytest.raises(ConflictError, match="already taken"):
        await store.create_user(
            username="amina", display_name="B", password=PASSWORD, roles=["viewer"]
        )
    with pytest.raises(NotFoundError):
        await store.get_user("nobody")
    with pytest.raises(NotFoundError):
        await store.update_user("nobody", active=False)
    assert [a.username for a in await store.list_users()] == ["amina"]


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.VIEWER, {Permission.VIEW}),
        (Role.CLERK, {Permission.VIEW, Permission.DRAFT}),
        (Role.OFFICER, {Permission.VIEW, Permission.DRAFT, Permission.SIGN}),
        (Role.ADMIN, {Permission.VIEW, Permission.ADMINISTER}),
    ],
)
def test_role_permissions(role: Role, allowed: set[Permission]) -> None:
    account = Account(username="x", display_name="X", roles=frozenset({role}))
    for permission in Permission:
        if permission in allowed:
            require(account, permission)
        else:
            with pytest.raises(ForbiddenError, match="needs the role"):
                require(account, permission)


def test_four_eyes() -> None:
    check_four_eyes(approver="ben", preparer="amina")
    with pytest.raises(ForbiddenError, match="four eyes"):
        check_four_eyes(approver="amina", preparer="amina")


@pytest.mark.parametrize(
    "submitted", [None, "", "wrong", "x" * 43], ids=["none", "empty", "wrong", "same-length"]
)
async def test_csrf_token_must_match(store: AccountStore, submitted: str | None) -> None:
    await store.create_user(username="amina", display_name="A", password=PASSWORD, roles=["clerk"])
    _, session = await store.login("amina", PASSWORD, address="a")
    session.check_csrf(session.csrf_token)
    with pytest.raises(ForbiddenError, match="CSRF"):
        session.check_csrf(submitted)


async def test_changing_own_password_needs_the_current_one_and_is_throttled(
    store: AccountStore,
) -> None:
    await store.create_user(username="amina", display_name="A", password=PASSWORD, roles=["clerk"])
    for _ in range(store.throttle.max_failures):
        with pytest.raises(UnauthorizedError, match="current password is wrong"):
            await store.change_own_password("amina", "guessing again", "another long passphrase")
    with pytest.raises(LoginThrottledError):
        await store.change_own_password("amina", PASSWORD, "another long passphrase")
    # The guesses lock the name for logins too.
    with pytest.raises(LoginThrottledError):
        await store.login("amina", PASSWORD, address="b")


async def test_changing_own_password_ends_every_session(store: AccountStore) -> None:
    await store.create_user(username="amina", display_name="A", password=PASSWORD, roles=["clerk"])
    token, _ = await store.login("amina", PASSWORD, address="a")
    await store.change_own_password("amina", PASSWORD, "another long passphrase")
    with pytest.raises(UnauthorizedError):
        await store.session(token)
    await store.login("amina", "another long passphrase", address="a")
