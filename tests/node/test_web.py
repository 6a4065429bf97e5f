"""The web pages over real loopback HTTP: login, sessions, CSRF, roles, throttling, dashboard."""

from __future__ import annotations

import re
import sqlite3
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import aiohttp
import pytest

from permitnet.node import audit, tokens
from permitnet.node.errors import UnauthorizedError
from permitnet.node.web import ACCOUNTS_KEY, _queries
from permitnet.node.web._base import safe_next
from permitnet.node.web.auth_pages import SETUP_CODE_KEY
from permitnet.node.web.testing import PASSWORD, STORE_KEY, csrf_of, log_in, web_node

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from aiohttp import web
    from aiohttp.test_utils import TestClient


@asynccontextmanager
async def web_client(
    tmp_path: Path, **users: list[str]
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with web_node(tmp_path, clock=lambda: int(time.time()), users=users) as node:
        yield node.client


async def test_login_sets_a_strict_httponly_session_cookie(tmp_path: Path) -> None:
    async with web_client(tmp_path, amina=["clerk"]) as client:
        page = await client.get("/login")
        token = csrf_of(await page.text())
        response = await client.post(
            "/login",
            data={"csrf_token": token, "username": "amina", "password": PASSWORD, "next": "/"},
            allow_redirects=False,
        )
        assert response.status == 303
        assert response.headers["Location"] == "/"
        cookie = response.cookies["pn_session"]
        assert cookie["httponly"]
        assert cookie["samesite"] == "Strict"
        assert not cookie["secure"]  # plain HTTP on loopback
        assert cookie["path"] == "/"


async def test_pages_need_a_login(tmp_path: Path) -> None:
    async with web_client(tmp_path) as client:
        response = await client.get("/", allow_redirects=False)
        assert response.status == 303
        assert response.headers["Location"] == "/login?next=/"
        response = await client.post("/logout", data={}, allow_redirects=False)
        assert response.status == 401
        assert "log in again" in await response.text()


async def test_security_headers(tmp_path: Path) -> None:
    async with web_client(tmp_path) as client:
        response = await client.get("/login")
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("csrf", "status"),
    [(None, 403), ("", 403), ("forged-token", 403)],
    ids=["missing", "empty", "wrong"],
)
async def test_post_without_its_csrf_token_is_refused(
    tmp_path: Path, csrf: str | None, status: int
) -> None:
    async with web_client(tmp_path, root=["admin"]) as client:
        await log_in(client, "root")
        data = {
            "username": "mallory",
            "display_name": "Mallory",
            "roles": "admin",
            "password": "a long enough passphrase 2",
            "password_confirm": "a long enough passphrase 2",
        }
        if csrf is not None:
            data["csrf_token"] = csrf
        response = await client.post("/admin/users", data=data)
        assert response.status == status
        text = await response.text()
        assert "CSRF token" in text
        assert "<h1>Not allowed</h1>" in text
        assert [a.username for a in await client.app[ACCOUNTS_KEY].list_users()] == ["root"]


async def test_login_form_needs_its_csrf_token_too(tmp_path: Path) -> None:
    async with web_client(tmp_path, amina=["clerk"]) as client:
        await client.get("/login")
        response = await client.post(
            "/login", data={"username": "amina", "password": PASSWORD}, allow_redirects=False
        )
        assert response.status == 403
        assert "pn_session" not in response.cookies


async def test_cross_site_origin_is_refused(tmp_path: Path) -> None:
    async with web_client(tmp_path, root=["admin"]) as client:
        csrf = await log_in(client, "root")
        response = await client.post(
            "/logout", data={"csrf_token": csrf}, headers={"Origin": "https://evil.example"}
        )
        assert response.status == 403
        assert "another site" in await response.text()


async def test_wrong_password_then_throttled(tmp_path: Path) -> None:
    async with web_client(tmp_path, amina=["clerk"]) as client:
        token = csrf_of(await (await client.get("/login")).text())
        limit = client.app[ACCOUNTS_KEY].throttle.max_failures
        for _ in range(limit):
            response = await client.post(
                "/login",
                data={"csrf_token": token, "username": "amina", "password": "wrong password!"},
            )
            assert response.status == 401
            assert "wrong user name or password" in await response.text()
        response = await client.post(
            "/login", data={"csrf_token": token, "username": "amina", "password": PASSWORD}
        )
        assert response.status == 429
        assert response.headers["Retry-After"] == "60"
        assert "too many failed login attempts" in await response.text()


async def test_open_redirects_are_not_followed(tmp_path: Path) -> None:
    async with web_client(tmp_path, amina=["clerk"]) as client:
        for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
            client.session.cookie_jar.clear()
            token = csrf_of(await (await client.get("/login")).text())
            response = await client.post(
                "/login",
                data={
                    "csrf_token": token,
                    "username": "amina",
                    "password": PASSWORD,
                    "next": target,
                },
                allow_redirects=False,
            )
            assert response.headers["Location"] == "/", target


async def test_logins_and_account_changes_are_audited(tmp_path: Path) -> None:
    async with web_client(tmp_path, root=["admin"]) as client:
        token = csrf_of(await (await client.get("/login")).text())
        await client.post(
            "/login", data={"csrf_token": token, "username": "root", "password": "nope nope nope"}
        )
        csrf = await log_in(client, "root")
        response = await client.post(
            "/admin/users",
            data={
                "csrf_token": csrf,
                "username": "ben",
                "display_name": "Ben O.",
                "roles": ["officer", "clerk"],
                "password": "officer passphrase 1",
                "password_confirm": "officer passphrase 1",
            },
        )
        assert response.status == 200
        assert "Ben O." in await response.text()
        await client.post("/logout", data={"csrf_token": csrf})
    with sqlite3.connect(tmp_path / "DE.sqlite3") as db:
        rows = db.execute("SELECT actor, action, subject FROM audit_log ORDER BY seq").fetchall()
    assert rows == [
        ("root", "login failed", "account:root"),
        ("root", "login", "account:root"),
        ("root", "create account", "account:ben"),
        ("root", "logout", "account:root"),
    ]


@pytest.mark.parametrize(
    ("roles", "path", "status"),
    [
        (["viewer"], "/admin/users", 403),
        (["clerk"], "/admin/users", 403),
        (["officer"], "/admin/users", 403),
        (["admin"], "/admin/users", 200),
        (["viewer"], "/", 200),
    ],
)
async def test_roles_guard_pages(tmp_path: Path, roles: list[str], path: str, status: int) -> None:
    async with web_client(tmp_path, someone=roles) as client:
        await log_in(client, "someone")
        response = await client.get(path)
        assert response.status == status
        if status == 403:
            assert "needs the role Administrator" in await response.text()


async def test_first_administrator_needs_the_logged_setup_code(tmp_path: Path) -> None:
    async with web_client(tmp_path) as client:
        page = await client.get("/setup")
        token = csrf_of(await page.text())
        form = {
            "csrf_token": token,
            "username": "root",
            "display_name": "Root Admin",
            "password": "first admin passphrase",
            "password_confirm": "first admin passphrase",
        }
        response = await client.post("/setup", data={**form, "setup_code": "guess"})
        assert response.status == 403
        code = client.app[SETUP_CODE_KEY]
        response = await client.post("/setup", data={**form, "setup_code": code})
        assert response.status == 200
        assert response.url.path == "/login"
        # Once an account exists, setup is closed for good.
        response = await client.post("/setup", data={**form, "setup_code": code})
        assert response.status == 409
        accounts = await client.app[ACCOUNTS_KEY].list_users()
        assert [(a.username, sorted(r.value for r in a.roles)) for a in accounts] == [
            ("root", ["admin"])
        ]


async def test_dashboard_shows_registry_state_and_empty_lists(tmp_path: Path) -> None:
    async with web_client(tmp_path, amina=["viewer"]) as client:
        await log_in(client, "amina")
        text = await (await client.get("/")).text()
        assert "No verified registry data yet" in text
        assert "No open alerts." in text
        assert "Competent authority of DE" in text


async def test_dashboard_links_each_alert_to_what_it_concerns(tmp_path: Path) -> None:
    async with web_client(tmp_path, amina=["viewer"]) as client:
        async with client.app[STORE_KEY].transaction() as tx:
            await tx.raise_alert("quantity_mismatch", "ab" * 32, "item 1 morphine: ...")
            await tx.raise_alert("registry_split_view", "registry-split-view-FR-00", "Split view")
        await log_in(client, "amina")
        text = await (await client.get("/")).text()
        assert f'href="/documents/{"ab" * 32}"' in text
        # A split view concerns the registry, not a document: no link to a missing page.
        assert 'href="/status">registry split view</a>' in text
        assert "/documents/registry-split-view" not in text


async def test_verify_uploads_have_their_own_size_limit(tmp_path: Path) -> None:
    async with web_client(tmp_path) as client:
        csrf = csrf_of(await (await client.get("/verify")).text())
        for size, status in ((2 * 1024 * 1024, 200), (9 * 1024 * 1024, 413)):
            form = aiohttp.FormData()
            form.add_field("csrf_token", csrf)
            form.add_field("file", b"\x00" * size, filename="scan.png")
            response = await client.post("/verify", data=form)
            text = await response.text()
            assert response.status == status, text
            if status == 413:
                assert "larger than this node accepts (8 MB at most)" in text
            else:
                assert "Not authentic" in text


async def test_administrator_manages_accounts(tmp_path: Path) -> None:
    async with web_client(tmp_path, root=["admin"], amina=["clerk"]) as client:
        csrf = await log_in(client, "root")
        accounts = client.app[ACCOUNTS_KEY]
        response = await client.post(
            "/admin/users/amina",
            data={"csrf_token": csrf, "action": "roles", "roles": ["clerk", "officer"]},
        )
        assert response.status == 200
        assert {r.value for r in (await accounts.get_user("amina")).roles} == {"clerk", "officer"}
        response = await client.post(
            "/admin/users/root", data={"csrf_token": csrf, "action": "deactivate"}
        )
        assert response.status == 400
        assert "cannot deactivate your own account" in await response.text()
        response = await client.post(
            "/admin/users/amina",
            data={
                "csrf_token": csrf,
                "action": "password",
                "password": "new passphrase here",
                "password_confirm": "new passphrase there",
            },
        )
        assert response.status == 400
        assert "the two passwords differ" in await response.text()
        await client.post("/admin/users/amina", data={"csrf_token": csrf, "action": "deactivate"})
        assert not (await accounts.get_user("amina")).active
        response = await client.post(
            "/admin/users/nobody", data={"csrf_token": csrf, "action": "activate"}
        )
        assert response.status == 404


async def test_administrator_creates_and_revokes_api_tokens(tmp_path: Path) -> None:
    async with web_client(tmp_path, root=["admin"], amina=["officer"]) as client:
        csrf = await log_in(client, "root")
        response = await client.post(
            "/admin/tokens",
            data={
                "csrf_token": csrf,
                "name": "customs",
                "actor": "customs-system",
                "scopes": ["read", "draft"],
            },
        )
        text = await response.text()
        assert response.status == 200
        secret = re.search(r'id="secret" class="mono" readonly value="(pnt_[^"]+)"', text)
        assert secret is not None
        store = client.app[STORE_KEY]
        assert (await tokens.authenticate(store, f"Bearer {secret[1]}")).actor == "customs-system"
        (token,) = await tokens.list_tokens(store)
        assert token.name == "customs"
        assert token.scopes == {"read", "draft"}
        assert secret[1] not in await (await client.get("/admin/tokens")).text()
        response = await client.post(
            "/admin/tokens", data={"csrf_token": csrf, "name": "x", "actor": "y"}
        )
        assert response.status == 400
        assert "scopes" in await response.text()
        await client.post(f"/admin/tokens/{token.id}/revoke", data={"csrf_token": csrf})
        with pytest.raises(UnauthorizedError, match="revoked"):
            await tokens.authenticate(store, f"Bearer {secret[1]}")
        # An officer is no administrator.
        csrf = await log_in(client, "amina")
        response = await client.post(
            "/admin/tokens",
            data={"csrf_token": csrf, "name": "n", "actor": "a", "scopes": "sign"},
        )
        assert response.status == 403
        assert len(await tokens.list_tokens(store)) == 1
        response = await client.get("/admin/settings")
        assert response.status == 403


async def test_behind_https_the_session_cookie_is_secure_and_host_prefixed(tmp_path: Path) -> None:
    # secure_cookies=True is how a node behind a TLS-terminating proxy is configured.
    async with web_node(
        tmp_path, clock=lambda: int(time.time()), users={"amina": ["clerk"]}, secure_cookies=True
    ) as node:
        client = node.client
        page = await client.get("/login")
        form_cookie = page.cookies["pn_form"]
        assert form_cookie["secure"]
        # The test client speaks plain HTTP, so it holds back Secure cookies: send it by hand,
        # as a browser would over HTTPS.
        response = await client.post(
            "/login",
            data={
                "csrf_token": csrf_of(await page.text()),
                "username": "amina",
                "password": PASSWORD,
            },
            headers={"Cookie": f"pn_form={form_cookie.value}"},
            allow_redirects=False,
        )
        assert response.status == 303
        cookie = response.cookies["__Host-pn_session"]
        assert cookie["secure"]
        assert cookie["httponly"]
        assert cookie["samesite"] == "Strict"
        assert cookie["path"] == "/"
        assert not cookie["domain"]
        assert "pn_session" not in response.cookies


async def test_an_unexpected_failure_shows_a_plain_page_and_is_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(_queries, "dashboard", broken)
    async with web_client(tmp_path, amina=["viewer"]) as client:
        token = csrf_of(await (await client.get("/login")).text())
        await client.post(
            "/login",
            data={"csrf_token": token, "username": "amina", "password": PASSWORD},
            allow_redirects=False,
        )
        response = await client.get("/")
        assert response.status == 500
        text = await response.text()
        assert "Something went wrong" in text
        assert "has been logged" in text
        assert "disk on fire" not in text  # internals stay in the log
    assert any("disk on fire" in r.getMessage() or r.exc_info for r in caplog.records)


async def test_unknown_pages_get_a_plain_404_page_but_machines_do_not(tmp_path: Path) -> None:
    async with web_client(tmp_path) as client:
        response = await client.get("/no-such-page", headers={"Accept": "text/html"})
        assert response.status == 404
        text = await response.text()
        assert "<h1>Not found</h1>" in text
        assert "there is no page /no-such-page on this node" in text
        assert response.headers["X-Frame-Options"] == "DENY"
        for path, accept in (("/no-such-page", "*/*"), ("/peer/v1/nothing", "text/html")):
            response = await client.get(path, headers={"Accept": accept})
            assert response.status == 404
            assert "<h1>" not in await response.text()
        response = await client.get("/documents/" + "0" * 64, allow_redirects=False)
        assert response.status == 303  # a real page, which needs a login first


async def test_people_change_their_own_password(tmp_path: Path) -> None:
    async with web_client(tmp_path, amina=["clerk"]) as client:
        csrf = await log_in(client, "amina")
        page = await (await client.get("/account")).text()
        assert "Clerk" in page
        new = "a brand new passphrase"
        cases = [
            (
                {"current_password": "not it at all", "password": new, "password_confirm": new},
                401,
                "the current password is wrong",
            ),
            (
                {"current_password": PASSWORD, "password": "short", "password_confirm": "short"},
                400,
                "at least 12",
            ),
            (
                {"current_password": PASSWORD, "password": new, "password_confirm": new + "!"},
                400,
                "the two passwords differ",
            ),
        ]
        for form, status, message in cases:
            response = await client.post("/account", data={"csrf_token": csrf, **form})
            assert response.status == status
            assert message in await response.text()
        response = await client.post(
            "/account",
            data={
                "csrf_token": csrf,
                "current_password": PASSWORD,
                "password": new,
                "password_confirm": new,
            },
            allow_redirects=False,
        )
        assert response.status == 303
        assert response.headers["Location"] == "/login"
        # The old session is gone, and only the new password opens a new one.
        assert (await client.get("/", allow_redirects=False)).status == 303
        accounts = client.app[ACCOUNTS_KEY]
        with pytest.raises(UnauthorizedError):
            await accounts.login("amina", PASSWORD, address="a")
        await accounts.login("amina", new, address="a")


async def test_throttling_behind_a_local_proxy_uses_the_forwarded_address(tmp_path: Path) -> None:
    async with web_client(tmp_path) as client:
        token = csrf_of(await (await client.get("/login")).text())
        limit = client.app[ACCOUNTS_KEY].throttle.max_failures_per_address

        async def attempt(name: str, forwarded: str) -> int:
            response = await client.post(
                "/login",
                data={"csrf_token": token, "username": name, "password": "wrong password!"},
                headers={"X-Forwarded-For": forwarded},
            )
            return response.status

        for i in range(limit):
            assert await attempt(f"guess{i}", "198.51.100.7") == 401
        assert await attempt("another", "198.51.100.7") == 429
        # Another client behind the same proxy is not locked out by the first one's guesses;
        # only the last entry (the one the proxy appended) counts.
        assert await attempt("another", "198.51.100.7, 203.0.113.9") == 401


async def test_forms_work_behind_a_tls_terminating_proxy(tmp_path: Path) -> None:
    # The test client speaks plain HTTP and so holds back Secure cookies: send them by hand,
    # as the browser would over HTTPS to the proxy.
    async with web_client(tmp_path, root=["admin"]) as client:
        host = f"127.0.0.1:{client.port}"
        proxy = {"X-Forwarded-Proto": "https"}
        origin = {"Origin": f"https://{host}"}
        page = await client.get("/login", headers=proxy)
        form_cookie = page.cookies["pn_form"].value
        response = await client.post(
            "/login",
            data={
                "csrf_token": csrf_of(await page.text()),
                "username": "root",
                "password": PASSWORD,
            },
            headers=proxy | origin | {"Cookie": f"pn_form={form_cookie}"},
            allow_redirects=False,
        )
        assert response.status == 303, await response.text()
        session = {"Cookie": f"__Host-pn_session={response.cookies['__Host-pn_session'].value}"}
        page = await client.get("/admin/tokens", headers=proxy | session)
        assert page.status == 200
        response = await client.post(
            "/admin/tokens",
            data={
                "csrf_token": csrf_of(await page.text()),
                "name": "n",
                "actor": "a",
                "scopes": "read",
            },
            headers=proxy | origin | session,
        )
        assert response.status == 200, await response.text()
        # Without the proxy's word, an https origin for an http request is another site.
        client.session.cookie_jar.clear()
        page = await client.get("/login")
        response = await client.post(
            "/login",
            data={
                "csrf_token": csrf_of(await page.text()),
                "username": "root",
                "password": PASSWORD,
            },
            headers=origin,
        )
        assert response.status == 403
        assert "another site" in await response.text()


async def test_cookies_are_secure_when_the_local_proxy_says_https(tmp_path: Path) -> None:
    async with web_client(tmp_path) as client:
        plain = await client.get("/login")
        assert not plain.cookies["pn_form"]["secure"]
        client.session.cookie_jar.clear()
        proxied = await client.get("/login", headers={"X-Forwarded-Proto": "https"})
        assert proxied.cookies["pn_form"]["secure"]


async def test_administrator_reads_the_audit_log_and_sees_tampering(tmp_path: Path) -> None:
    async with web_client(tmp_path, root=["admin"], amina=["viewer"]) as client:
        await log_in(client, "amina")
        await log_in(client, "root")
        text = await (await client.get("/admin/audit")).text()
        assert "rows verify: none was changed or removed" in text
        assert "<td>amina</td><td>login</td>" in text
        text = await (await client.get("/admin/audit", params={"subject": "account:amina"})).text()
        assert "<td>root</td><td>login</td>" not in text
        for bad in ("x", "-1", "1.5", "1e3"):
            assert (await client.get("/admin/audit", params={"before": bad})).status == 400
        # A row number past any there is: the newest rows, not a server error.
        response = await client.get("/admin/audit", params={"before": "9" * 40})
        assert response.status == 200
        assert "<td>amina</td><td>login</td>" in await response.text()
        # Someone edits a row behind SQLite's back (dropping the trigger that refuses it).
        with sqlite3.connect(tmp_path / "DE.sqlite3") as db:
            db.execute("DROP TRIGGER audit_log_no_update")
            db.execute("UPDATE audit_log SET actor = 'mallory' WHERE actor = 'amina'")
        text = await (await client.get("/admin/audit")).text()
        assert "notice error" in text
        assert "row altered" in text
        await log_in(client, "amina")
        assert (await client.get("/admin/audit")).status == 403


async def test_audit_log_opens_on_its_newest_rows_and_pages_back(tmp_path: Path) -> None:
    async with web_client(tmp_path, root=["admin"]) as client:
        await log_in(client, "root")
        async with client.app[STORE_KEY].transaction() as tx:
            for n in range(250):
                await audit.append(
                    tx, at=1_800_000_000, actor="clerk", action="note", subject=f"s{n}", detail={}
                )

        def seqs(text: str) -> list[int]:
            return [int(x) for x in re.findall(r'<td class="num">(\d+)</td>', text)]

        newest = await (await client.get("/admin/audit")).text()
        last = max(seqs(newest))
        assert seqs(newest) == list(range(last, last - 100, -1))
        assert f"All {last} rows verify" in newest
        assert "Newest rows" not in newest
        earlier = re.search(r'href="/admin/audit\?before=(\d+)">Earlier rows', newest)
        assert earlier is not None
        assert int(earlier.group(1)) == last - 99
        page = await (await client.get("/admin/audit", params={"before": earlier.group(1)})).text()
        assert seqs(page) == list(range(last - 100, last - 200, -1))
        assert "Newest rows" in page
        oldest = await (await client.get("/admin/audit", params={"before": "51"})).text()
        assert seqs(oldest) == list(range(50, 0, -1))
        assert "Earlier rows" not in oldest
        # One subject: its rows only, and no page beyond them.
        one = await (await client.get("/admin/audit", params={"subject": "s7"})).text()
        assert len(seqs(one)) == 1
        assert "Earlier rows" not in one


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/documents/ab", "/documents/ab"),
        ("/", "/"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("evil.example", "/"),
        ("", "/"),
    ],
    ids=["path", "root", "scheme-relative", "absolute", "backslash", "relative", "empty"],
)
def test_redirect_targets_stay_on_this_node(target: str, expected: str) -> None:
    # Login and alert acknowledgement both send people on through this one guard.
    assert safe_next(target) == expected
