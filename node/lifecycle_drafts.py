"""Drafts and their approval: prepare, list, discard, approve (four eyes), hold and release.

A mixin of :class:`permitnet.node.lifecycle.NodeServices`, kept apart so that each module stays
small. A draft is checked completely when it is prepared and signed only when another person
approves it; an import certificate over the estimate is held instead, and released when a newer
registry view makes room for it. The steps that build, check and sign a document are
:mod:`permitnet.node.lifecycle_signing`'s.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from permitnet.node import drafting
from permitnet.node.account_rules import check_four_eyes
from permitnet.node.errors import ConflictError, NotFoundError, ValidationError
from permitnet.node.lifecycle_signing import SigningMixin
from permitnet.protocol.documents import ImportCertificate

if TYPE_CHECKING:
    from permitnet.node.store import DocumentRecord, Tx

__all__ = ["ApprovalResult", "Draft", "DraftsMixin"]

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


class DraftsMixin(SigningMixin):
    """Drafts, their four-eyes approval and held import certificates for :class:`NodeServices`."""

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
