"""``permitnet registry ...`` end to end on a temporary data directory."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from permitnet.protocol.cose import key_id, public_key_from_seed
from permitnet.protocol.registry_client import TrustedRegistry
from permitnet.protocol.registry_requests import build_enrollment_request
from permitnet.tools.cli import main

if TYPE_CHECKING:
    import pytest


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["registry", *args])
    out, err = capsys.readouterr()
    return code, out, err


def seed(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


def test_operator_workflow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reg, keys, out_dir = str(tmp_path / "reg"), str(tmp_path / "offline"), tmp_path / "mirror"
    assert (
        run(capsys, "init", reg, "--root-keys-dir", keys, "--root-keys", "3", "--threshold", "2")[0]
        == 0
    )
    assert sorted(p.name for p in Path(keys).iterdir()) == [
        "root-1.key",
        "root-2.key",
        "root-3.key",
    ]
    code, out, _ = run(
        capsys,
        "add-country",
        reg,
        "DE",
        "--authority",
        "BfArM",
        "--endpoint",
        "https://node.de.example",
    )
    assert code == 0
    assert "Germany" in out
    request = tmp_path / "enroll.cose"
    request.write_bytes(
        build_enrollment_request(seed("de-1"), country="DE", valid_from=0, requested_at=0)
    )
    assert run(capsys, "submit-request", reg, str(request))[0] == 0
    code, out, _ = run(capsys, "requests", reg)
    listed = json.loads(out)
    fingerprint = key_id(public_key_from_seed(seed("de-1"))).hex()
    assert listed[0]["fingerprint"] == fingerprint
    assert run(capsys, "approve", reg, str(listed[0]["id"]), "--fingerprint", fingerprint)[0] == 0
    for args in (
        ("set-estimate", reg, "DE", "morphine", "2026", "1000000", "--effective", "2026-01-01"),
        ("set-supplementary", reg, "DE", "morphine", "2026", "5000", "--effective", "2026-04-01"),
        ("set-assessment", reg, "DE", "diazepam", "700", "--effective", "2026-01-01"),
        ("set-catalogue", reg),
        ("publish", reg),
        ("export", reg, str(out_dir)),
    ):
        assert run(capsys, *args)[0] == 0, args
    pinned = (out_dir / "v1" / "root" / "1").read_bytes()
    view = TrustedRegistry(pinned).update_snapshot(
        (out_dir / "v1" / "snapshot" / "latest").read_bytes(), now=0
    )
    assert view.balance_inputs("DE", "morphine", 2026) == (1_000_000, 5_000)
    assert view.balance_inputs("DE", "diazepam", 2026) == (700, 0)
    assert view.key(bytes.fromhex(fingerprint)) is not None
    assert view.catalogue is not None
    code, out, _ = run(
        capsys,
        "revoke-key",
        reg,
        fingerprint,
        "--compromised-at",
        "2026-03-01T00:00:00",
        "--reason",
        "laptop lost",
    )
    assert code == 0
    code, out, _ = run(
        capsys,
        "rotate-root",
        reg,
        "--sign-with",
        f"{keys}/root-1.key",
        "--sign-with",
        f"{keys}/root-3.key",
        "--new-keys-dir",
        str(tmp_path / "offline2"),
    )
    assert code == 0
    assert "root v2" in out
    code, out, _ = run(capsys, "status", reg)
    status = json.loads(out)
    assert (status["root_version"], status["latest_version"], status["keys"]) == (2, 2, 1)
    code, out, _ = run(capsys, "token-add", reg, "desk")
    token = out.strip().splitlines()[-1]
    assert len(token) > 30
    assert json.loads(run(capsys, "tokens", reg)[1])[0]["name"] == "desk"
    assert run(capsys, "token-revoke", reg, "desk")[0] == 0
    audit = json.loads(run(capsys, "audit", reg, "--limit", "100")[1])
    actions = {row["action"] for row in audit}
    assert {
        "init",
        "set-country",
        "approve-key-request",
        "revoke-key",
        "publish",
        "rotate-root",
        "add-token",
        "revoke-token",
    } <= actions
    assert all(
        row["actor"].startswith("cli:") for row in audit if row["action"] != "submit-key-request"
    )
    code, out, _ = run(capsys, "audit", reg, "--verify")
    assert code == 0
    assert "intact" in out


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reg = str(tmp_path / "reg")
    code, _, err = run(capsys, "status", reg)
    assert code == 1
    assert err.count("\n") == 1
    assert "registry init" in err
    run(capsys, "init", reg, "--root-keys-dir", str(tmp_path / "k"))
    cases = [
        ("add-country", reg, "XX", "--authority", "a"),
        ("set-estimate", reg, "DE", "morphine", "2026", "5", "--effective", "2026-01-01"),
        ("approve", reg, "7"),
        ("revoke-key", reg, "zz", "--compromised-at", "0", "--reason", "x"),
        ("set-catalogue", reg, "--digest", "not hex"),
        ("export", reg, str(tmp_path / "out")),
        ("init", reg, "--root-keys-dir", str(tmp_path / "k2")),
        ("init", str(tmp_path / "r3"), "--root-keys-dir", str(tmp_path / "r3" / "keys")),
        ("token-revoke", reg, "nobody"),
        (
            "rotate-root",
            reg,
            "--sign-with",
            str(tmp_path / "k" / "root-1.key"),
            "--new-keys-dir",
            str(tmp_path / "k3"),
        ),
    ]
    cases_then_no_new_keys = tmp_path / "k3"
    for args in cases:
        code, _, err = run(capsys, *args)
        assert code == 1, args
        assert err.startswith("permitnet: error: "), (args, err)
        assert err.count("\n") == 1, (args, err)
    # The refused root rotation left no orphan key files behind.
    assert list(cases_then_no_new_keys.iterdir()) == []


def test_export_writes_a_bounded_window(tmp_path: Path) -> None:
    from permitnet.registry.export import export
    from permitnet.registry.service import Registry

    reg = Registry.init(
        tmp_path / "reg", root_keys_dir=tmp_path / "k", root_keys=1, threshold=1, now=1, actor="t"
    )
    for step in range(5):
        reg.publish(actor="t", now=2 + step)
    out = tmp_path / "out"
    export(reg, out, window=2)
    assert sorted(p.name for p in (out / "v1" / "delta").iterdir()) == ["3", "4", "5"]
    assert sorted(p.name for p in (out / "v1" / "snapshot").iterdir()) == ["3", "4", "5", "latest"]
    assert len(list((out / "v1" / "head").iterdir())) == 6
    export(reg, out, window=2)  # re-export over the old tree
    assert (out / "index.json").exists()
    assert not (tmp_path / "out.export-old").exists()
    reg.close()
