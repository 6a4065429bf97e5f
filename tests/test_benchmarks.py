"""Every benchmark still runs: ``--quick`` of each, as a subprocess, like the docs say to run it.

Figures are not asserted (performance is measured in ``benchmarks/``, never in tests); what is
checked is that a benchmark has not rotted, as ``bench_node.py`` once did when the example
certificate's fixed dates passed and every document it sent was rejected as expired.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = sorted(p.name for p in (ROOT / "benchmarks").glob("bench_*.py"))


def test_every_benchmark_is_listed() -> None:
    assert len(BENCHMARKS) >= 7, BENCHMARKS


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_runs_and_prints_its_raw_limit(name: str) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    # Each prints its figures beside the machine's own limit measured in the same run.
    assert "raw" in output.lower() or "limit" in output.lower(), output[-3000:]
