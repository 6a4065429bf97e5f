"""``permitnet node backup|restore|export`` and ``permitnet discover`` on real node directories."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import sqlite3
from pathlib import Path

import pytest

from permitnet.node.config import NodeConfig
from permitnet.node.keystore import SigningKey, generate_seed, save_key
from permitnet.node.store import DocumentItem, DocumentRecord, Store
from permitnet.tools.cli import main

NOW = 1_790_000_000


def _record(n: int, *, partner: str = "FR", items: int = 1) -> DocumentRecord:
    raw = f"signed document {n}".encode()
    return DocumentRecord(
        id=hashlib.sha256(raw).hexdigest(),
        raw=raw,
        doc_type="import_certificate" if n % 2 else "export_authorization",
        issuer="DE",
        recipient=partner,
        issued_at=NOW + n * 86400,
        direction="outbound",
        state="delivered",
        items=tuple(
            DocumentItem(
                substance="morphine-sulfate-pentahydrate",
                base_substance="morphine",
                quantity_mg=1000 * (i + 1),
                base_mg=752 * (i + 1),
            )
            for i in range(items)
        ),
        estimate_year=2026,
    )


def make_node(directory: Path, documents: int = 5) -> NodeConfig:
    directory.mkdir(parents=True, exist_ok=True)
    config = NodeConfig(
        data_dir=directory,
        country="DE",
        authority_name="Bundesopiumstelle",
        registry_urls=("http://127.0.0.1:9",),
        registry_root=Path("registry-root.cbor"),
        public_url="http://127.0.0.1:9",
        port=9,
        insecure_plaintext_key=True,
    )
    config.save()
    (directory / "registry-root.cbor").write_bytes(b"root metadata")
    save_key(
        config.key_path,
        SigningKey.from_seed(generate_seed()),
        passphrase=None,
        insecure_plaintext=True,
    )

    async def fill() -> None:
        store = await Store.open(config.database_path, clock=lambda: NOW)
        try:
            async with store.transaction() as tx:
                for n in range(documents):
                    await tx.insert_document(
                        _record(n, partner="FR" if n % 3 else "IN", items=1 + n % 2),
                        actor="test",
                    )
        finally:
            await store.close()

    asyncio.run(fill())
    return config


def test_backup_then_restore_onto_a_new_machine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_node(tmp_path / "de", documents=7)
    out = tmp_path / "backup"
    assert main(["node", "backup", str(tmp_path / "de"), str(out), "--quiet"]) == 0
    assert "backup of DE written" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["files"]) == {"node.sqlite3", "node.toml", "registry-root", "signing-key"}

    # A new, empty machine: the whole node comes back from the backup.
    assert main(["node", "restore", str(out), str(tmp_path / "new"), "--quiet"]) == 0
    restored = NodeConfig.load(tmp_path / "new")
    assert restored.country == "DE"
    assert restored.key_path.read_bytes() == config.key_path.read_bytes()
    connection = sqlite3.connect(restored.database_path)
    assert connection.execute("SELECT count(*) FROM documents").fetchone() == (7,)
    connection.close()


def test_backup_without_key(tmp_path: Path) -> None:
    make_node(tmp_path / "de")
    out = tmp_path / "b"
    assert main(["node", "backup", str(tmp_path / "de"), str(out), "--without-key"]) == 0
    assert not (out / "signing-key").exists()
    assert "signing-key" not in json.loads((out / "manifest.json").read_text())["files"]


def _tamper_database(backup: Path) -> None:
    path = backup / "node.sqlite3"
    data = bytearray(path.read_bytes())
    data[-100] ^= 1
    path.write_bytes(bytes(data))


def _other_country(backup: Path) -> None:
    manifest = json.loads((backup / "manifest.json").read_text())
    manifest["country"] = "FR"
    (backup / "manifest.json").write_text(json.dumps(manifest))


RESTORE_REFUSALS = [
    ("no manifest", lambda b: (b / "manifest.json").unlink(), "not a permitnet node backup"),
    ("manifest junk", lambda b: (b / "manifest.json").write_text("{"), "cannot read"),
    ("database altered", _tamper_database, "does not match its SHA-256"),
    ("database missing", lambda b: (b / "node.sqlite3").unlink(), "is missing"),
    ("other country", _other_country, "the backup is of FR"),
]


@pytest.mark.parametrize(
    ("name", "damage", "message"), RESTORE_REFUSALS, ids=[case[0] for case in RESTORE_REFUSALS]
)
def test_restore_refusals_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, damage: object, message: str
) -> None:
    make_node(tmp_path / "de")
    out = tmp_path / "b"
    assert main(["node", "backup", str(tmp_path / "de"), str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert callable(damage)
    damage(out)
    before = (tmp_path / "de" / "node.sqlite3").read_bytes()
    assert main(["node", "restore", str(out), str(tmp_path / "de"), "--quiet"]) == 1, name
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("permitnet: error: ")
    assert message in err
    assert (tmp_path / "de" / "node.sqlite3").read_bytes() == before


def test_backup_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_node(tmp_path / "de")
    (tmp_path / "exists").mkdir()
    cases = [
        (["node", "backup", str(tmp_path / "nothing")], "a node directory?"),
        (["node", "backup", str(tmp_path / "de"), str(tmp_path / "exists")], "exists"),
        (["node", "export", str(tmp_path / "nothing")], "node.toml not found"),
    ]
    for argv, message in cases:
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert message in err, argv
        assert err.count("\n") == 1


def test_export_csv_one_row_per_item(tmp_path: Path) -> None:
    make_node(tmp_path / "de", documents=6)
    out = tmp_path / "export.csv"
    assert main(["node", "export", str(tmp_path / "de"), "-o", str(out), "--quiet"]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    # Documents 1, 3, 5 have two items, 0, 2, 4 one: 9 rows.
    assert len(rows) == 9
    assert {r["recipient"] for r in rows} == {"FR", "IN"}
    assert rows[0]["issued_at_utc"].endswith("Z")
    assert sum(int(r["base_mg"]) for r in rows) == 752 * (3 * 1 + 3 * 3)


def test_export_json_filters_and_signed_bytes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_node(tmp_path / "de", documents=6)
    argv = ["node", "export", str(tmp_path / "de"), "--format", "json", "--partner", "IN"]
    assert main([*argv, "--include-signed", "--quiet"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["format"] == "permitnet-databank-export-1"
    assert data["country"] == "DE"
    assert [d["recipient"] for d in data["documents"]] == ["IN", "IN"]
    import base64

    for document in data["documents"]:
        raw = base64.b64decode(document["signed_cose_b64"])
        assert hashlib.sha256(raw).hexdigest() == document["id"]
    # Dates: documents are a day apart from NOW (2026-09-21T...).
    since = "2026-09-24"
    assert main(["node", "export", str(tmp_path / "de"), "--format", "json", "--since", since]) == 0
    later = json.loads(capsys.readouterr().out)["documents"]
    assert 0 < len(later) < 6
    assert all(d["issued_at_utc"] >= since for d in later)


def test_export_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_node(tmp_path / "de")
    assert main(["node", "export", str(tmp_path / "de"), "--include-signed"]) == 1
    assert "JSON only" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["node", "export", str(tmp_path / "de"), "--since", "yesterday"])
    assert exc.value.code == 2
    assert "not a date in YYYY-MM-DD form" in capsys.readouterr().err


def test_discover_lists_nothing_quickly(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["discover", "--seconds", "0.5", "--interface", "127.0.0.1", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert isinstance(listed, list)
    assert all(entry["verified"] is False for entry in listed)
    assert main(["discover", "--seconds", "0"]) == 1


def test_rotate_key_prepare_then_activate_needs_the_registry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_node(tmp_path / "de")
    assert main(["node", "rotate-key", str(tmp_path / "de")]) == 0
    out = capsys.readouterr().out
    assert "prepared in" in out
    assert (tmp_path / "de" / "key-rotation-request.cose").is_file()
    # A second prepare is refused while one is waiting.
    assert main(["node", "rotate-key", str(tmp_path / "de")]) == 1
    assert "already waiting" in capsys.readouterr().err
    # The registry (port 9, nothing listens) cannot confirm the key: activation is refused.
    assert main(["node", "rotate-key", str(tmp_path / "de"), "--activate"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("permitnet: error: ")


def test_restore_refuses_while_a_node_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import http.server
    import threading

    class Healthy(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()
            self.wfile.write(b'{"status": "ok"}')

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Healthy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        config = make_node(tmp_path / "de")
        config.with_overrides(port=server.server_address[1]).save()
        assert main(["node", "backup", str(tmp_path / "de"), str(tmp_path / "b"), "--quiet"]) == 0
        capsys.readouterr()
        assert main(["node", "restore", str(tmp_path / "b"), str(tmp_path / "de")]) == 1
        assert "stop it before restoring" in capsys.readouterr().err
        assert main(["node", "restore", str(tmp_path / "b"), str(tmp_path / "de"), "--force"]) == 0
    finally:
        server.shutdown()
        thread.join(timeout=10)
