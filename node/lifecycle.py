"""The node's domain services: drafts, four-eyes signing, balances, alerts, overdue flags.

Thin async services: they read the store and the registry view, call the pure checks in
:mod:`permitnet.node.checks` and the protocol's document classes, sign with the node's key, and
write the signed bytes, their outbox row, events and audit rows in one transaction. The acting
user (a web user or an API token's actor) is always passed in; a draft is never signed by the
person who prepared it.

Documents received from peers are applied by :mod:`permitnet.node.receiving`, inside the
exchange's receive pipeline, after it has verified them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from permitnet.node import checks, drafting, receiving
from permitnet.node.account_rules import check_four_eyes
from permitnet.node.errors import ConflictError, NotFoundError, ValidationError
from permitnet.node.lifecycle_queries import Alert, QueriesMixin
from permitnet.protocol import rules
from permitnet.protocol.catalogue import DEFAULT_CATALOGUE
from permitnet.protocol.documents import (
    Cancellation,
    Document,
    Endorsement,
    ExportAuthorization,
    ExportDeclaration,
    ImportCertificate,
    Message,
)
from permitnet.protocol.errors import DocumentError, RuleViolation
from permitnet.protocol.signed import SignedDocument

if TYPE_CHECKING:
    from permitnet.node.keystore import SigningKey
    from permitnet.node.registry_holder import RegistryHolder
    from permitnet.node.store import DocumentRecord, Store, Tx

__all__ = ["Alert", "ApprovalResult", "Draft", "NodeServices"]

#: Document states the node uses.
ACTIVE: Final = "active"
CANCELLED: Final = "cancelled"
ENDORSED: Final = "endorsed"
OVERDUE: Final = "overdue"
_DRAFT_COLUMNS: Final = (
    "id, doc_type, body, state, created_by, created_at, updated_at, held_reason, approved_by, "
    "document_id"
)
_DRAFT_SELECT: Final = (
    "SELECT id, doc_type, body, state, created_by, created_at, updated_at, held_reason, "
    "approved_by, document_id FROM drafts "
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Draft:
    """A document being prepared; signed only when another person approves it."""

    id: str
    doc_type: str
    body: dict[str, Any]
    state: str
    created_by: str
    created_at: int
    updated_at: int
    held_reason: str | None
    approved_by: str | None
    document_id: str | None

    def to_json(self) -> dict[str, Any]:
        """Return the draft as a JSON object."""
        return {
            "id": self.id,
            "type": self.doc_type,
            "body": self.body,
            "state": self.state,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "held_reason": self.held_reason,
            "approved_by": self.approved_by,
            "document_id": self.document_id,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalResult:
    """The outcome of approving a draft: signed (with its document) or held (with why)."""

    draft: Draft
    document: DocumentRecord | None


def _draft(row: Any) -> Draft:
    return Draft(
        id=row[0],
        doc_type=row[1],
        body=json.loads(row[2]),
        state=row[3],
        created_by=row[4],
        created_at=row[5],
        updated_at=row[6],
        held_reason=row[7],
        approved_by=row[8],
        document_id=row[9],
    )


def _today(now: int) -> dt.date:
    return dt.datetime.fromtimestamp(now, tz=dt.UTC).date()


class NodeServices(QueriesMixin):
    """The lifecycle of one country's documents. One instance per running node."""

    def __init__(
        self,
        *,
        store: Store,
        country: str,
        authority: str,
        signing_key: SigningKey,
        registry: RegistryHolder,
    ) -> None:
        self.store = store
        self.country = country
        self.authority = authority
        self.signing_key = signing_key
        self.registry = registry
        self.catalogue = DEFAULT_CATALOGUE

    # Building documents -------------------------------------------------------------------

    async def _referenced(self, tx: Tx, body: dict[str, Any], field: str) -> DocumentRecord:
        doc_id = drafting.parse_id(body.get(field), field)
        try:
            return await tx.get_document(doc_id)
        except NotFoundError as e:
            raise DocumentError(f"{field}: no document {doc_id} is stored at this node") from e

    async def _build(
        self, tx: Tx, doc_type: str, body: dict[str, Any], now: int
    ) -> tuple[Document, DocumentRecord | None]:
        """Build the document a draft body describes; return it and the record it refers to.

        The record (None for certificates and declarations) is read in ``tx``: checking the
        document before signing and choosing where it goes use it rather than read it again.
        """
        me, authority = self.country, self.authority
        match doc_type:
            case "import_certificate":
                return drafting.build_import_certificate(
                    body, issuer=me, authority=authority, issued_at=now
                ), None
            case "export_declaration":
                return drafting.build_export_declaration(
                    body, issuer=me, authority=authority, issued_at=now
                ), None
            case "export_authorization":
                ic = await self._referenced(tx, body, "import_certificate")
                certificate = drafting.decode_stored(ic)
                if not isinstance(certificate, ImportCertificate) or ic.direction == "outbound":
                    raise DocumentError(
                        "import_certificate: not an import certificate received from the "
                        "importing country"
                    )
                return drafting.build_export_authorization(
                    body,
                    certificate=certificate,
                    certificate_id=ic.id,
                    issuer=me,
                    authority=authority,
                    issued_at=now,
                ), ic
            case "endorsement":
                ea = await self._referenced(tx, body, "export_authorization")
                authorization = drafting.decode_stored(ea)
                if not isinstance(authorization, ExportAuthorization) or ea.direction != "inbound":
                    raise DocumentError(
                        "export_authorization: not an export authorization received from the "
                        "exporting country"
                    )
                return drafting.build_endorsement(
                    body,
                    authorization=authorization,
                    authorization_id=ea.id,
                    issuer=me,
                    authority=authority,
                    issued_at=now,
                ), ea
            case "cancellation":
                target = await self._referenced(tx, body, "document")
                if target.direction != "outbound" or target.issuer != self.country:
                    raise DocumentError(
                        "document: only documents this node issued can be cancelled"
                    )
                return drafting.build_cancellation(
                    body, target=target, issuer=me, authority=authority, issued_at=now
                ), target
            case "message":
                about = await self._referenced(tx, body, "about")
                return drafting.build_message(
                    body, about=about, issuer=me, authority=authority, issued_at=now
                ), about
        raise ValidationError(f"unknown document type {doc_type!r}; known: {drafting.DRAFT_TYPES}")

    # Drafts -------------------------------------------------------------------------------

    async def create_draft(self, doc_type: str, body: object, *, actor: str) -> Draft:
        """Prepare a document as a draft, checked completely but not signed.

        Raises:
            ValidationError: an unknown type or a body that is not an object.
            DocumentError: a field is missing or invalid (the message names it).
        """
        if doc_type not in drafting.DRAFT_TYPES:
            raise ValidationError(f"unknown draft type {doc_type!r}; known: {drafting.DRAFT_TYPES}")
        if not isinstance(body, dict):
            raise ValidationError("the request body must be a JSON object")
        draft_id = secrets.token_hex(12)
        async with self.store.transaction() as tx:
            await self._build(tx, doc_type, body, tx.now)
            await tx.execute(
                f"INSERT INTO drafts ({_DRAFT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",  # noqa: S608 - fixed column list
                (
                    draft_id,
                    doc_type,
                    json.dumps(body),
                    "draft",
                    actor,
                    tx.now,
                    tx.now,
                    None,
                    None,
                    None,
                ),
            )
            await tx.add_event(
                "draft",
                draft_id,
                from_state=None,
                to_state="draft",
                actor=actor,
                detail={"doc_type": doc_type},
            )
            await tx.audit(actor, f"draft {doc_type}", draft_id, {})
            created = tx.now
        return Draft(
            id=draft_id,
            doc_type=doc_type,
            body=json.loads(json.dumps(body)),
            state="draft",
            created_by=actor,
            created_at=created,
            updated_at=created,
            held_reason=None,
            approved_by=None,
            document_id=None,
        )

    async def get_draft(self, draft_id: str) -> Draft:
        """Return a draft.

        Raises:
            NotFoundError: no such draft.
        """
        async with self.store.read() as tx:
            return await self._get_draft(tx, draft_id)

    async def _get_draft(self, tx: Tx, draft_id: str) -> Draft:
        row = await tx.fetchone(
            _DRAFT_SELECT + "WHERE id = ?",
            (draft_id,),
        )
        if row is None:
            raise NotFoundError(f"no draft {draft_id}")
        return _draft(row)

    async def list_drafts(
        self, *, state: str | None = None, doc_type: str | None = None, limit: int = 100
    ) -> list[Draft]:
        """Drafts, newest first, optionally filtered by state and type."""
        sql = _DRAFT_SELECT + "WHERE 1=1"
        params: list[Any] = []
        if state is not None:
            sql += " AND state = ?"
            params.append(state)
        if doc_type is not None:
            sql += " AND doc_type = ?"
            params.append(doc_type)
        async with self.store.read() as tx:
            rows = await tx.fetchall(
                sql + " ORDER BY created_at DESC, id LIMIT ?", [*params, limit]
            )
        return [_draft(r) for r in rows]

    async def discard_draft(self, draft_id: str, *, actor: str) -> Draft:
        """Discard an unsigned draft.

        Raises:
            NotFoundError: no such draft.
            ConflictError: it was already signed or discarded.
        """
        async with self.store.transaction() as tx:
            draft = await self._get_draft(tx, draft_id)
            if draft.state not in {"draft", "held"}:
                raise ConflictError(f"draft {draft_id} is {draft.state} and cannot be discarded")
            await tx.execute(
                "UPDATE drafts SET state = 'discarded', updated_at = ? WHERE id = ?",
                (tx.now, draft_id),
            )
            await tx.add_event(
                "draft",
                draft_id,
                from_state=draft.state,
                to_state="discarded",
                actor=actor,
                detail={},
            )
            await tx.audit(actor, "discard draft", draft_id, {})
        return await self.get_draft(draft_id)

    async def approve_draft(self, draft_id: str, *, actor: str) -> ApprovalResult:
        """Approve and sign a draft (four eyes), or hold an import certificate over the estimate.

        Raises:
            NotFoundError: no such draft.
            ForbiddenError: ``actor`` prepared the draft.
            ConflictError: the draft is already signed, discarded or held.
            RuleViolation: a Convention rule blocks the document (the message says which).
            DocumentError: the draft no longer builds (e.g. what it refers to changed).
        """
        async with self.store.transaction() as tx:
            draft = await self._get_draft(tx, draft_id)
            check_four_eyes(approver=actor, preparer=draft.created_by)
            if draft.state != "draft":
                raise ConflictError(f"draft {draft_id} is {draft.state}, not awaiting approval")
            record = await self._sign_draft(tx, draft, actor)
            after = await self._get_draft(tx, draft_id)
        return ApprovalResult(draft=after, document=record)

    async def _sign_draft(self, tx: Tx, draft: Draft, actor: str) -> DocumentRecord | None:
        document, referenced = await self._build(tx, draft.doc_type, draft.body, tx.now)
        await self._check_before_signing(tx, document, referenced)
        if isinstance(document, ImportCertificate):
            reasons = await self._estimate_shortfalls(tx, document)
            if reasons:
                held_reason = "; ".join(reasons)
                await tx.execute(
                    "UPDATE drafts SET state = 'held', held_reason = ?, approved_by = ?, "
                    "updated_at = ? WHERE id = ?",
                    (held_reason, actor, tx.now, draft.id),
                )
                await tx.add_event(
                    "draft",
                    draft.id,
                    from_state=draft.state,
                    to_state="held",
                    actor=actor,
                    detail={"reason": held_reason},
                )
                await tx.audit(actor, "hold import certificate", draft.id, {"reason": held_reason})
                return None
        record = await self._sign_and_store(tx, document, referenced, actor=actor)
        await tx.execute(
            "UPDATE drafts SET state = 'signed', held_reason = NULL, approved_by = ?, "
            "document_id = ?, updated_at = ? WHERE id = ?",
            (actor, record.id, tx.now, draft.id),
        )
        await tx.add_event(
            "draft",
            draft.id,
            from_state=draft.state,
            to_state="signed",
            actor=actor,
            detail={"document_id": record.id},
        )
        return record

    async def _check_before_signing(
        self, tx: Tx, document: Document, referenced: DocumentRecord | None
    ) -> None:
        """Apply the protocol's Convention rules, with what this node holds, before signing.

        ``referenced`` is the record the document refers to, as ``_build`` read it in ``tx``.
        """
        today = _today(tx.now)
        match document:
            case ImportCertificate():
                rules.check_import_certificate(document, today=today)
            case ExportAuthorization():
                assert referenced is not None  # _build read the certificate
                certificate = await receiving.check_authorization(
                    tx, document, referenced, exporting_country=self.country, today=today
                )
                checks.check_importer_estimate(
                    document, self.registry.require(), certificate.estimate_year
                )
            case Endorsement():
                assert referenced is not None  # _build read the authorization
                if referenced.state in {CANCELLED, ENDORSED}:
                    raise RuleViolation(
                        "authorization-closed", f"the export authorization is {referenced.state}"
                    )
                authorization = drafting.decode_stored(referenced)
                assert isinstance(authorization, ExportAuthorization)  # checked building it
                rules.check_endorsement(
                    document,
                    authorization,
                    authorization_id=bytes.fromhex(referenced.id),
                    today=today,
                )
            case ExportDeclaration():
                rules.check_export_declaration(document, catalogue=self.catalogue)
            case Cancellation():
                assert referenced is not None  # _build read the target
                if referenced.state == CANCELLED:
                    raise RuleViolation(
                        "already-cancelled", f"document {referenced.id} is already cancelled"
                    )
                rules.check_cancellation(
                    document,
                    drafting.decode_stored(referenced),
                    target_id=bytes.fromhex(referenced.id),
                )
            case Message():
                assert referenced is not None  # _build read what it is about
                rules.check_message(
                    document,
                    drafting.decode_stored(referenced),
                    about_id=bytes.fromhex(referenced.id),
                )

    async def _estimate_shortfalls(self, tx: Tx, certificate: ImportCertificate) -> list[str]:
        view = self.registry.require()
        requested = rules.base_totals(certificate.items)
        balances = {
            s: checks.balance_for(
                view,
                self.country,
                s,
                certificate.estimate_year,
                await self._authorized(tx, s, certificate.estimate_year),
            )
            for s in requested
        }
        return checks.estimate_shortfalls(requested, balances)

    async def _sign_and_store(
        self, tx: Tx, document: Document, referenced: DocumentRecord | None, *, actor: str
    ) -> DocumentRecord:
        signed = SignedDocument.sign(
            document, signing_key=self.signing_key.seed, kid=self.signing_key.kid
        )
        record = drafting.record_for(signed.raw, document, direction="outbound", state=ACTIVE)
        # A document about a paper certificate goes to no node: the partner has none, and the
        # authorization is printed instead.
        paper = referenced is not None and referenced.direction == "paper"
        peers = [] if paper else [record.recipient]
        await tx.insert_document(record, actor=actor, outbox_peers=peers)
        if isinstance(document, Cancellation):
            await tx.set_state(
                document.document.hex(),
                CANCELLED,
                actor=actor,
                detail={"cancellation": record.id, "reason": document.reason},
            )
        elif isinstance(document, Endorsement):
            await tx.set_state(
                document.export_authorization.hex(),
                ENDORSED,
                actor=actor,
                detail={"endorsement": record.id},
            )
        return dataclasses.replace(record, stored_at=tx.now)

    async def recheck_held(self, *, actor: str = "node") -> list[str]:
        """Re-check held import certificates against the current registry view.

        Called by the registry-refresh loop when a newer view arrives. A certificate that now
        fits is signed on behalf of the officer who approved it; the others stay held with an
        updated reason.

        Returns:
            The ids of the drafts signed now.
        """
        released = []
        for draft in reversed(await self.list_drafts(state="held", limit=10_000)):
            async with self.store.transaction() as tx:
                current = await self._get_draft(tx, draft.id)
                if current.state != "held" or current.approved_by is None:
                    continue
                document, _ = await self._build(tx, current.doc_type, current.body, tx.now)
                assert isinstance(document, ImportCertificate)  # only certificates are held
                reasons = await self._estimate_shortfalls(tx, document)
                if reasons:
                    await tx.execute(
                        "UPDATE drafts SET held_reason = ? WHERE id = ?",
                        ("; ".join(reasons), draft.id),
                    )
                    continue
                record = await self._sign_and_store(tx, document, None, actor=current.approved_by)
                await tx.execute(
                    "UPDATE drafts SET state = 'signed', held_reason = NULL, document_id = ?, "
                    "updated_at = ? WHERE id = ?",
                    (record.id, tx.now, draft.id),
                )
                await tx.add_event(
                    "draft",
                    draft.id,
                    from_state="held",
                    to_state="signed",
                    actor=actor,
                    detail={"document_id": record.id, "released_by": "registry estimate"},
                )
                await tx.audit(
                    actor,
                    "release held import certificate",
                    draft.id,
                    {"document_id": record.id, "approved_by": current.approved_by},
                )
                released.append(draft.id)
        return released

    # Direct actions -----------------------------------------------------------------------

    async def send_message(self, body: object, *, actor: str) -> DocumentRecord:
        """Sign and send a message about a stored document to the other authority.

        Raises:
            ValidationError: the body is not an object.
            DocumentError: a field is missing or invalid, or the document is unknown.
        """
        if not isinstance(body, dict):
            raise ValidationError("the request body must be a JSON object")
        async with self.store.transaction() as tx:
            document, about = await self._build(tx, "message", body, tx.now)
            await self._check_before_signing(tx, document, about)
            return await self._sign_and_store(tx, document, about, actor=actor)

    async def record_paper_certificate(
        self,
        body: object,
        *,
        scan: bytes,
        media_type: str,
        filename: str,
        actor: str,
    ) -> DocumentRecord:
        """Record by hand a paper import certificate from a partner country without a node.

        It is stored as not electronically verified, with the scan attached, and export
        authorizations may then be issued against it for printing.

        Raises:
            ValidationError: no scan, or a body that is not an object.
            DocumentError: a field is missing or invalid.
        """
        if not isinstance(body, dict):
            raise ValidationError("the request body must be a JSON object")
        if not scan:
            raise ValidationError("scan: the scanned paper certificate is required")
        fields = dict(body)
        issuer, authority = fields.pop("issuer", None), fields.pop("authority", None)
        if not isinstance(authority, str):
            raise DocumentError("authority: the issuing authority's name is required")
        if fields.get("exporting_country", self.country) != self.country:
            raise DocumentError(
                f"exporting_country: a paper certificate recorded here is for {self.country}"
            )
        fields["exporting_country"] = self.country
        async with self.store.transaction() as tx:
            certificate = drafting.build_import_certificate(
                fields, issuer=str(issuer), authority=authority, issued_at=tx.now
            )
            raw = certificate.to_cbor()
            record = drafting.record_for(
                raw, certificate, direction="paper", state=ACTIVE, electronically_verified=False
            )
            if not await tx.insert_document(record, actor=actor):
                raise ConflictError(f"this paper certificate is already recorded as {record.id}")
            await tx.execute(
                "INSERT INTO attachments (document_id, filename, media_type, sha256, content, "
                "added_by, added_at) VALUES (?,?,?,?,?,?,?)",
                (record.id, filename, media_type, receiving.sha256_hex(scan), scan, actor, tx.now),
            )
            return await tx.get_document(record.id)
