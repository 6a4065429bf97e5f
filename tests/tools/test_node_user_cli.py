"""``permitnet node user ...``: web accounts made on the command line, used over real HTTP."""

from __future__ import annotations

import asyncio
import getpass
import io
import json
import sqlite3
from typing import TYPE_CHECKING

import pytest
from aiohttp.test_utils import TestClient, TestServer

from permitnet.node.app import create_app
from permitnet.node.config import NodeConfig
from permitnet.node.keystore import load_key
from permitnet.node.web.testing import csrf_of
from permitnet.protocol.cose import public_key_from_seed
from permitnet.protocol.registry_root import RootMetadata, sign_root
from permitnet.tools.cli import main
from permitnet.tools.node_user_cli import cli_actor

if TYPE_CHECKING:
    from pathlib import Path

ROOT_SEED = bytes(range(32))
PASSWORD = "correct horse battery staple"
ENV = "PERMITNET_TEST_USER_PASSWORD"


@pytest.fixture
def node_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A node directory made by ``permitnet node init`` (plain-text key: a test)."""
    public = public_key_from_seed(ROOT_SEED)
    root = RootMetadata(
        version=1, issued_at=1, threshold=1, root_keys=(public,), snapshot_keys=(public,)
    )
    root_file = tmp_path / "root.cbor"
    root_file.write_bytes(sign_root(root, [ROOT_SEED]))
    node = tmp_path / "node"
    code = main(
        [
            "node",
            "init",
            str(node),
            "--country",
            "DE",
            "--registry",
            "http://127.0.0.1:9",
            "--registry-root",
            str(root_file),
            "--insecure-plaintext-key",
        ]
    )
    assert code == 0
    capsys.readouterr()
    return node


def _user(node: Path, *args: str) -> int:
    return main(["node", "user", args[0], str(node), *args[1:]])


def _add(node: Path, username: str, *extra: str) -> int:
    return _user(node, "add", username, "--password-env", ENV, *extra)


def _audit(node: Path) -> list[tuple[str, str, str, dict[str, object]]]:
    with sqlite3.connect(node / "node.sqlite3") as db:
        rows = db.execute("SELECT actor, action, subject, detail FROM audit_log ORDER BY seq")
        return [(a, b, c, json.loads(d)) for a, b, c, d in rows]


async def _login(client: TestClient, username: str, password: str) -> int:  # type: ignore[type-arg]
    client.session.cookie_jar.clear()
    token = csrf_of(await (await client.get("/login")).text())
    response = await client.post(
        "/login",
        data={"csrf_token": token, "username": username, "password": password, "next": "/"},
        allow_redirects=False,
    )
    return response.status


async def test_added_user_logs_in_over_http_and_a_disabled_one_cannot(
    node_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ENV, PASSWORD)
    assert (
        await asyncio.to_thread(
            _add, node_dir, "amina", "--role", "admin", "--name", "Amina Diallo"
        )
        == 0
    )
    assert (
        await asyncio.to_thread(_add, node_dir, "bruno", "--role", "clerk", "--role", "officer")
        == 0
    )
    assert "account created: amina  Amina Diallo  roles=admin  active" in capsys.readouterr().out

    assert await asyncio.to_thread(_user, node_dir, "list") == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing == [
        "amina  Amina Diallo  roles=admin  active",
        "bruno  bruno  roles=clerk,officer  active",
    ]

    config = NodeConfig.load(node_dir)
    app = create_app(config, signing_key=load_key(config.key_path, passphrase=None))
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        assert await _login(client, "amina", PASSWORD) == 303
        dashboard = await client.get("/admin/users")
        assert dashboard.status == 200
        assert "bruno" in await dashboard.text()
        assert await _login(client, "amina", "not the password at all") == 401

        # Disabling works on the running node: the next login is refused.
        assert await asyncio.to_thread(_user, node_dir, "disable", "bruno") == 0
        assert await _login(client, "bruno", PASSWORD) == 401
        assert await asyncio.to_thread(_user, node_dir, "enable", "bruno") == 0
        assert await _login(client, "bruno", PASSWORD) == 303

        monkeypatch.setenv(ENV, "a brand new passphrase")
        assert (
            await asyncio.to_thread(
                _user, node_dir, "reset-password", "bruno", "--password-env", ENV
            )
            == 0
        )
        assert await _login(client, "bruno", PASSWORD) == 401
        assert await _login(client, "bruno", "a brand new passphrase") == 303

    actor = cli_actor()
    assert actor.startswith("cli:")
    cli_rows = [(a, b, c) for a, b, c, d in _audit(node_dir) if d.get("via") == "cli"]
    assert cli_rows == [
        (actor, "create account", "account:amina"),
        (actor, "create account", "account:bruno"),
        (actor, "account deactivate", "account:bruno"),
        (actor, "account activate", "account:bruno"),
        (actor, "account password", "account:bruno"),
    ]
    created = [d for _, action, _, d in _audit(node_dir) if action == "create account"]
    assert [(d["via"], d["roles"]) for d in created] == [
        ("cli", ["admin"]),
        ("cli", ["clerk", "officer"]),
    ]
    # The CLI's rows keep the audit chain intact.
    assert await asyncio.to_thread(main, ["node", "audit", "verify", str(node_dir)]) == 0


BAD = [
    ("bad role", ["add", "x1", "--role", "boss", "--password-env", ENV], PASSWORD, "unknown role 'boss'"),
    ("weak password", ["add", "carla", "--role", "viewer", "--password-env", ENV], "short", "at least"),
    ("empty password", ["add", "carla", "--role", "viewer", "--password-env", ENV], "", f"{ENV} is not set or empty"),
    ("password holds the name", ["add", "carla", "--role", "viewer", "--password-env", ENV], "carla-carla-carla", "must not contain the user name"),
    ("password given as env name", ["add", "carla", "--role", "viewer", "--password-env", "my secret pw!"], PASSWORD, "the NAME of an environment variable"),
    ("no terminal, no env", ["add", "carla", "--role", "viewer"], PASSWORD, "name an environment variable with --password-env"),
    ("bad user name", ["add", "bad name!", "--role", "viewer", "--password-env", ENV], PASSWORD, "user name"),
    ("disable unknown", ["disable", "nobody"], PASSWORD, "no account named nobody"),
    ("enable unknown", ["enable", "nobody"], PASSWORD, "no account named nobody"),
    ("reset unknown", ["reset-password", "nobody", "--password-env", ENV], PASSWORD, "no account named nobody"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "password", "message"), [c[1:] for c in BAD], ids=[c[0] for c in BAD]
)
def test_bad_input_is_refused_with_one_line(  # noqa: PLR0917 - fixtures and table columns
    node_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    password: str,
    message: str,
) -> None:
    monkeypatch.setenv(ENV, password)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert _user(node_dir, *args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("permitnet: error: ")
    assert message in err
    assert "my secret pw!" not in err
    assert not [row for row in _audit(node_dir) if row[3].get("via") == "cli"]


def test_duplicate_user_is_refused(
    node_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ENV, PASSWORD)
    assert _add(node_dir, "amina", "--role", "admin") == 0
    capsys.readouterr()
    assert _add(node_dir, "amina", "--role", "viewer") == 1
    err = capsys.readouterr().err
    assert err == "permitnet: error: the user name amina is already taken\n"
    assert len([r for r in _audit(node_dir) if r[1] == "create account"]) == 1


def test_missing_directory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ENV, PASSWORD)
    for args in (["add", "amina", "--role", "admin", "--password-env", ENV], ["list"]):
        assert _user(tmp_path / "absent", *args) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert "a node directory?" in err
    assert not (tmp_path / "absent").exists()


def test_password_from_the_prompt_must_be_typed_twice_alike(
    node_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    typed = iter(["first passphrase!", "second passphrase", PASSWORD, PASSWORD])
    monkeypatch.setattr("sys.stdin", Terminal(""))
    monkeypatch.setattr(getpass, "getpass", lambda _prompt="": next(typed))
    assert _user(node_dir, "add", "amina", "--role", "admin") == 1
    assert capsys.readouterr().err == "permitnet: error: the two passwords differ\n"
    assert _user(node_dir, "add", "amina", "--role", "admin") == 0
    assert _user(node_dir, "list") == 0
    assert "amina  amina  roles=admin  active" in capsys.readouterr().out


@pytest.mark.parametrize(
    "command", [[], ["add"], ["list"], ["disable"], ["enable"], ["reset-password"]]
)
def test_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["node", "user", *command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: permitnet node user" in out
    if command == ["add"]:
        assert "--password-env" in out
        assert "{viewer,clerk,officer,admin}" in out


def test_the_password_is_never_an_argument(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["node", "user", "add", "dir", "amina", "--role", "admin", "--password", "x"])
    assert "unrecognized arguments: --password" in capsys.readouterr().err


def test_disabling_the_last_administrator_warns(
    node_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ENV, PASSWORD)
    assert _add(node_dir, "amina", "--role", "admin") == 0
    assert _add(node_dir, "bruno", "--role", "admin") == 0
    capsys.readouterr()
    assert _user(node_dir, "disable", "bruno") == 0
    assert "warning" not in capsys.readouterr().err
    assert _user(node_dir, "disable", "amina") == 0
    assert "warning: no active administrator remains" in capsys.readouterr().err
