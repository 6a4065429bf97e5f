"""Numbered schema migrations for the node's SQLite database.

Each migration is applied once, in order, in its own transaction, and recorded in
``schema_migrations``. Migrations are never edited once released: a change is a new number.

The schema keeps the exact signed bytes of every document immutable (triggers refuse UPDATE of
the signed columns and any DELETE), and the audit log append-only. The exchange tables (outbox,
inbound pending, quarantine, nonces) are written here so that a document and its outbox row are
always stored in one transaction.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MIGRATIONS"]

_V1: Final = """
CREATE TABLE documents (
    id TEXT PRIMARY KEY,                -- lowercase hex SHA-256 of raw
    raw BLOB NOT NULL,                  -- the exact signed COSE_Sign1 bytes, or a paper record
    doc_type TEXT NOT NULL,
    issuer TEXT NOT NULL,               -- issuing country
    recipient TEXT NOT NULL,            -- addressed country
    issued_at INTEGER NOT NULL,
    refers_to TEXT,                     -- the document this one refers to (hex id)
    reference TEXT,                     -- the issuer's reference number
    estimate_year INTEGER,
    valid_until TEXT,                   -- ISO date, for certificates and authorizations
    direction TEXT NOT NULL CHECK (direction IN ('outbound', 'inbound', 'paper')),
    electronically_verified INTEGER NOT NULL CHECK (electronically_verified IN (0, 1)),
    state TEXT NOT NULL,
    stored_at INTEGER NOT NULL
) STRICT;
CREATE INDEX documents_type ON documents (doc_type, direction, issued_at);
CREATE INDEX documents_refers_to ON documents (refers_to);
CREATE INDEX documents_issuer ON documents (issuer, issued_at);
CREATE INDEX documents_recipient ON documents (recipient, issued_at);
CREATE INDEX documents_state ON documents (state);

CREATE TRIGGER documents_signed_bytes_immutable
BEFORE UPDATE OF id, raw, doc_type, issuer, recipient, issued_at, refers_to, reference,
    estimate_year, valid_until, direction, electronically_verified ON documents
BEGIN
    SELECT RAISE(ABORT, 'signed documents are immutable');
END;
CREATE TRIGGER documents_never_deleted BEFORE DELETE ON documents
BEGIN
    SELECT RAISE(ABORT, 'signed documents are never deleted');
END;

CREATE TABLE document_items (
    document_id TEXT NOT NULL REFERENCES documents (id),
    item_index INTEGER NOT NULL,
    substance TEXT NOT NULL,            -- as traded (salt or preparation code)
    base_substance TEXT NOT NULL,       -- the base the estimate is kept in
    quantity_mg INTEGER NOT NULL CHECK (quantity_mg >= 0),
    base_mg INTEGER NOT NULL CHECK (base_mg >= 0),
    PRIMARY KEY (document_id, item_index)
) STRICT;
CREATE INDEX document_items_base ON document_items (base_substance);
CREATE TRIGGER document_items_immutable BEFORE UPDATE ON document_items
BEGIN
    SELECT RAISE(ABORT, 'document items are immutable');
END;
CREATE TRIGGER document_items_never_deleted BEFORE DELETE ON document_items
BEGIN
    SELECT RAISE(ABORT, 'document items are never deleted');
END;

-- Every state change of a document, draft or alert: the node's event feed (SSE reads it).
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,              -- document id, draft id or alert id
    from_state TEXT,
    to_state TEXT,
    actor TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'   -- JSON object
) STRICT;
CREATE INDEX events_subject ON events (subject, seq);
CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;
CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

-- Drafts prepared by a clerk, approved and signed by another person (four eyes).
CREATE TABLE drafts (
    id TEXT PRIMARY KEY,
    doc_type TEXT NOT NULL,
    body TEXT NOT NULL,                 -- JSON of the document fields
    state TEXT NOT NULL CHECK (state IN ('draft', 'held', 'signed', 'discarded')),
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    held_reason TEXT,
    approved_by TEXT,
    document_id TEXT REFERENCES documents (id)
) STRICT;
CREATE INDEX drafts_state ON drafts (state, doc_type);

-- Files attached to a document (e.g. the scan of a paper import certificate).
CREATE TABLE attachments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id TEXT NOT NULL REFERENCES documents (id),
    filename TEXT NOT NULL,
    media_type TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    content BLOB NOT NULL,
    added_by TEXT NOT NULL,
    added_at INTEGER NOT NULL
) STRICT;
CREATE INDEX attachments_document ON attachments (document_id);
CREATE TRIGGER attachments_immutable BEFORE UPDATE ON attachments
BEGIN
    SELECT RAISE(ABORT, 'attachments are immutable');
END;

-- Delivery of an outbound document to one peer; written with the document, in one transaction.
CREATE TABLE outbox (
    document_id TEXT NOT NULL REFERENCES documents (id),
    peer TEXT NOT NULL,                 -- peer country
    created_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    delivered_at INTEGER,
    receipt BLOB,                       -- the peer's signed delivery receipt, exact bytes
    PRIMARY KEY (document_id, peer)
) STRICT;
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE delivered_at IS NULL;
CREATE INDEX outbox_peer ON outbox (peer) WHERE delivered_at IS NULL;

-- Received, authentic-so-far documents waiting for a dependency or for fresh registry data.
CREATE TABLE inbound_pending (
    document_id TEXT PRIMARY KEY,
    raw BLOB NOT NULL,
    reason TEXT NOT NULL CHECK (reason IN ('dependency', 'registry')),
    waiting_for TEXT,                   -- the missing document id, for 'dependency'
    from_peer TEXT,
    received_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
) STRICT;
CREATE INDEX inbound_pending_waiting ON inbound_pending (waiting_for);

-- Inputs that failed verification, kept for audit; never treated as accepted.
CREATE TABLE quarantine (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id TEXT,                   -- hex SHA-256 of raw (may be garbage)
    raw BLOB NOT NULL,
    reason TEXT NOT NULL,
    from_peer TEXT,
    received_at INTEGER NOT NULL
) STRICT;
CREATE INDEX quarantine_document ON quarantine (document_id);
CREATE TRIGGER quarantine_append_only BEFORE UPDATE ON quarantine
BEGIN
    SELECT RAISE(ABORT, 'quarantine is append-only');
END;

-- Nonces of signed node-to-node requests, for replay protection.
CREATE TABLE nonces (
    key_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    seen_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (key_id, nonce)
) STRICT, WITHOUT ROWID;
CREATE INDEX nonces_expiry ON nonces (expires_at);

CREATE TABLE alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    document_id TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    acknowledged_at INTEGER,
    acknowledged_by TEXT,
    UNIQUE (kind, document_id)
) STRICT;

-- Append-only, hash-chained audit log: hash = SHA-256(prev_hash || CBOR of the row).
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
) STRICT;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

-- API bearer tokens, stored as SHA-256 hashes of the secret.
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    actor TEXT NOT NULL,
    token_hash BLOB NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;

-- Idempotency keys of API creates: same key and body -> same answer.
CREATE TABLE idempotency (
    token_id TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash BLOB NOT NULL,
    status INTEGER NOT NULL,
    response TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (token_id, key)
) STRICT;
"""

#: (version, SQL) in ascending order; the database records the highest applied.
MIGRATIONS: Final[tuple[tuple[int, str], ...]] = ((1, _V1),)
