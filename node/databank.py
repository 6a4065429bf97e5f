"""Export of a node's databank (its documents and their items) as CSV or JSON, for analysis.

The export reads the database in one read transaction, so it is a consistent picture even while
the node runs. It holds what analysts need for flows and balances (who issued what to whom, when,
in which state, for which substances and quantities), not the signed bytes, unless asked: a
JSON export with ``include_signed`` carries each document's exact COSE bytes in base64, so that
every figure can be traced back to a verifiable original.

CSV has one row per document item (a document with three items gives three rows, repeating the
document's columns), which is what spreadsheets and pandas want. JSON has one object per
document with its items nested.
"""

from __future__ import annotations

import base64
import csv
import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, Final, Literal

from permitnet.node.errors import StoreError, ValidationError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

__all__ = ["CSV_COLUMNS", "EXPORT_FORMAT", "ExportFilter", "count_documents", "export_databank"]

EXPORT_FORMAT: Final = "permitnet-databank-export-1"
_DOC_COLUMNS: Final = (
    "id",
    "doc_type",
    "issuer",
    "recipient",
    "issued_at",
    "direction",
    "state",
    "reference",
    "refers_to",
    "estimate_year",
    "valid_until",
    "electronically_verified",
)
_ITEM_COLUMNS: Final = ("item_index", "substance", "base_substance", "quantity_mg", "base_mg")
#: The CSV header: the document's columns, the issue time as ISO text, then the item's columns.
CSV_COLUMNS: Final = (*_DOC_COLUMNS, "issued_at_utc", *_ITEM_COLUMNS)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportFilter:
    """Which documents to export; every field left ``None`` means no restriction.

    Attributes:
        since: issued at or after this Unix time.
        until: issued before this Unix time.
        doc_type: only this document type.
        partner: only documents issued by or addressed to this country.
    """

    since: int | None = None
    until: int | None = None
    doc_type: str | None = None
    partner: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        """Return the SQL condition and its parameters."""
        clauses: list[str] = []
        params: list[Any] = []
        if self.since is not None:
            clauses.append("issued_at >= ?")
            params.append(self.since)
        if self.until is not None:
            clauses.append("issued_at < ?")
            params.append(self.until)
        if self.doc_type is not None:
            clauses.append("doc_type = ?")
            params.append(self.doc_type)
        if self.partner is not None:
            clauses.append("(issuer = ? OR recipient = ?)")
            params.extend([self.partner, self.partner])
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _connect(database: Path) -> sqlite3.Connection:
    if not database.is_file():
        raise StoreError(f"no database at {database}")
    try:
        connection = sqlite3.connect(database, isolation_level=None)
        connection.execute("BEGIN")
        connection.execute("SELECT count(*) FROM documents").fetchone()
    except sqlite3.Error as e:
        raise StoreError(f"{database} is not a node database: {e}") from e
    return connection


def count_documents(database: Path, selection: ExportFilter) -> int:
    """Return how many documents an export with ``selection`` would hold.

    Raises:
        StoreError: the database is missing or not a node database.
    """
    connection = _connect(database)
    try:
        where, params = selection.where()
        row = connection.execute(f"SELECT count(*) FROM documents{where}", params).fetchone()  # noqa: S608 - fixed clauses, bound values
        return int(row[0])
    finally:
        connection.close()


def _documents(
    connection: sqlite3.Connection, selection: ExportFilter, include_signed: bool
) -> Iterator[dict[str, Any]]:
    where, params = selection.where()
    columns = ", ".join(_DOC_COLUMNS) + (", raw" if include_signed else "")
    cursor = connection.execute(
        f"SELECT {columns} FROM documents{where} ORDER BY issued_at, id",  # noqa: S608 - fixed columns
        params,
    )
    items = connection.cursor()
    for row in cursor:
        document = dict(zip(_DOC_COLUMNS, row[: len(_DOC_COLUMNS)], strict=True))
        document["electronically_verified"] = bool(document["electronically_verified"])
        document["issued_at_utc"] = _iso(document["issued_at"])
        document["items"] = [
            dict(zip(_ITEM_COLUMNS, item, strict=True))
            for item in items.execute(
                "SELECT item_index, substance, base_substance, quantity_mg, base_mg "
                "FROM document_items WHERE document_id = ? ORDER BY item_index",
                (document["id"],),
            )
        ]
        if include_signed:
            document["signed_cose_b64"] = base64.b64encode(bytes(row[-1])).decode("ascii")
        yield document


def _iso(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def export_databank(
    database: Path,
    out: IO[str],
    *,
    fmt: Literal["csv", "json"],
    selection: ExportFilter | None = None,
    include_signed: bool = False,
    country: str | None = None,
    now: int,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the node's documents to ``out`` as CSV or JSON.

    Args:
        database: the node's database file (the node may be running).
        out: a text stream to write to.
        fmt: ``csv`` (one row per item) or ``json`` (one object per document).
        selection: which documents; all by default.
        include_signed: JSON only: add each document's signed bytes in base64.
        country: the node's country, recorded in the JSON header.
        now: the export time (Unix seconds), recorded in the JSON header.
        progress: called with 1 after each document written.

    Returns:
        The number of documents written.

    Raises:
        StoreError: the database is missing or not a node database.
        ValidationError: ``include_signed`` with CSV, or an unknown format.
    """
    if fmt not in {"csv", "json"}:
        raise ValidationError(f"export format must be csv or json, got {fmt!r}")
    if include_signed and fmt == "csv":
        raise ValidationError("signed bytes are exported in JSON only")
    selection = selection or ExportFilter()
    connection = _connect(database)
    written = 0
    try:
        documents = _documents(connection, selection, include_signed)
        if fmt == "csv":
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(CSV_COLUMNS)
            for document in documents:
                head = [document[c] for c in (*_DOC_COLUMNS, "issued_at_utc")]
                for item in document["items"] or [dict.fromkeys(_ITEM_COLUMNS)]:
                    writer.writerow([*head, *(item[c] for c in _ITEM_COLUMNS)])
                written += 1
                if progress is not None:
                    progress(1)
        else:
            header = {"format": EXPORT_FORMAT, "country": country, "exported_at": _iso(now)}
            # Written as a stream, one document at a time, so memory stays flat.
            out.write(json.dumps(header)[:-1] + ', "documents": [')
            for document in documents:
                out.write(("\n" if written == 0 else ",\n") + json.dumps(document))
                written += 1
                if progress is not None:
                    progress(1)
            out.write("\n]}\n")
    except sqlite3.Error as e:
        raise StoreError(f"export failed: {e}") from e
    finally:
        connection.close()
    return written
