"""Progress bars (tools/progress.py): shown at a terminal, silent otherwise or with --quiet."""

from __future__ import annotations

import io

import pytest

from permitnet.tools.progress import progress_bar, track


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_at_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with progress_bar("backup", unit="pages") as report:
        for done in range(0, 101, 25):
            report(done, 100)
    text = terminal.getvalue()
    assert "backup" in text
    assert "100/100" in text
    assert list(track([1, 2, 3], "export")) == [1, 2, 3]
    assert "3/3" in terminal.getvalue()


@pytest.mark.parametrize("quiet", [True, False])
def test_silent_when_quiet_or_not_a_terminal(monkeypatch: pytest.MonkeyPatch, quiet: bool) -> None:
    stream: io.StringIO = _Terminal() if quiet else io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    with progress_bar("restore", quiet=quiet) as report:
        report(5, 10)
        report(10, 10)
    assert list(track(range(3), "export", quiet=quiet)) == [0, 1, 2]
    assert stream.getvalue() == ""
