"""Every registered command and subcommand answers ``--help``; errors are one line."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from permitnet.tools.cli import COMMAND_MODULES, build_parser, main


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> list[tuple[str, ...]]:
    found = [path]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found.extend(_walk(child, (*path, name)))
    return found


COMMANDS = _walk(build_parser(), ())


def test_the_walk_finds_the_operator_commands() -> None:
    # The walk must see real commands, or the parametrized test below checks nothing.
    assert ("node", "backup") in COMMANDS
    assert ("node", "export") in COMMANDS
    assert ("discover",) in COMMANDS
    assert "permitnet.tools.ops_cli" in COMMAND_MODULES


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "permitnet")
def test_help(command: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: permitnet")
    assert " ".join(("permitnet", *command)) in out.splitlines()[0]


def test_errors_are_one_line_and_traceback_only_with_debug(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-node")
    # The installed console script, as operators run it (``python -m`` would import cli twice).
    run = [str(Path(sys.executable).parent / "permitnet")]
    plain = subprocess.run(
        [*run, "node", "export", missing], capture_output=True, text=True, timeout=60, check=False
    )
    assert plain.returncode == 1
    assert plain.stderr.count("\n") == 1
    assert plain.stderr.startswith("permitnet: error: ")
    assert "Traceback" not in plain.stderr
    debug = subprocess.run(
        [*run, "--debug", "node", "export", missing],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> list[tuple[list[str], ...]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        positional = [a for a in parser._actions if not a.option_strings and a.dest != "help"]
        required = [a.option_strings[0] for a in parser._actions if a.option_strings and a.required]
        return [(list(path), [a.dest for a in positional], required)]
    found: list[tuple[list[str], ...]] = []
    for action in subs:
        for name, child in action.choices.items():
            found.extend(_leaves(child, (*path, name)))
    return found


#: Commands that create what they are pointed at, serve forever, or take no path: each has
#: its own tests (test_demo, test_serve_tls, the registry and node CLI tests).
_NOT_ON_A_MISSING_PATH = {("demo",), ("discover",), ("node", "init"), ("registry", "init")}
_ON_A_MISSING_PATH = [
    leaf for leaf in _leaves(build_parser(), ()) if tuple(leaf[0]) not in _NOT_ON_A_MISSING_PATH
]


@pytest.mark.parametrize(
    ("command", "positional", "required"),
    _ON_A_MISSING_PATH,
    ids=[" ".join(leaf[0]) for leaf in _ON_A_MISSING_PATH],
)
def test_every_command_on_a_missing_path_fails_in_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    positional: list[str],
    required: list[str],
) -> None:
    missing = str(tmp_path / "missing" / "nothing-here")
    argv = [*command, *(missing for _ in positional)]
    for option in required:
        argv += [option, missing]
    exit_code: object = None
    try:
        code = main(argv)
    except SystemExit as e:
        # argparse refused a value (an integer, a date): its usage line and one error line.
        exit_code = e.code
    if exit_code is not None:
        assert exit_code == 2
        assert "error:" in capsys.readouterr().err
        return
    err = capsys.readouterr().err
    assert code != 0, argv
    errors = [line for line in err.splitlines() if line.startswith("permitnet: error: ")]
    assert len(errors) == 1, err
    assert "Traceback" not in err
