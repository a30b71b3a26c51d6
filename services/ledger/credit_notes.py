"""IssueCreditNote: a credit note credits lines of one invoice; what the invoice no longer owes
becomes the customer's credit balance."""

from __future__ import annotations

from datetime import date

from pymongo.errors import DuplicateKeyError

from services.common.errors import AlreadyExists, FieldViolation, InvalidArgument
from services.common.events import CreditNoteIssued, CreditNoteIssuedData, Event
from services.common.ids import new_id
from services.common.mongo import Doc, Session
from services.ledger.changes import Changes, invoice_event
from services.ledger.documents import (
    Ctx,
    add_credited,
    changed_invoice,
    credited_by_rate,
    credited_vat_by_rate,
    history_entry,
    invoiced_by_rate,
    invoiced_vat_by_rate,
    journal_entry,
    opening_amounts,
    position_of,
    summary,
)
from services.ledger.domain import journal
from services.ledger.domain.invoice import (
    CreditDraft,
    IssueCreditNote,
    check_credit_note,
    left_by_rate,
    line_from_doc,
)
from services.ledger.domain.status import InvoiceStatus, check_can_credit
from services.ledger.profiles import current_version

# What a credit note takes over from the invoice it credits.
_FROM_INVOICE = (
    "tenant_id",
    "customer_id",
    "customer_number",
    "customer_name",
    "customer_kind",
    "currency",
    "buyer_reference",
    "order_reference",
    "contract_reference",
    "language",
)


async def issue_credit_note(changes: Changes, ctx: Ctx, cmd: IssueCreditNote) -> tuple[Doc, Doc, bool]:
    """Returns the credit note, the invoice it credits, and whether the credit note was created now."""
    # Calls with the same key wait for each other in this replica (a retry answers with the first's
    # credit note); across replicas the unique key index decides.
    async with changes.key_lock(ctx.tenant.id, "credit-note", cmd.idempotency_key):
        return await _issue(changes, ctx, cmd)


class _CreditNoteExists(Exception):
    """Inside the transaction: a credit note with this key is stored already (answer with it)."""


async def _issue(changes: Changes, ctx: Ctx, cmd: IssueCreditNote) -> tuple[Doc, Doc, bool]:
    tenant = ctx.tenant
    fingerprint = cmd.fingerprint()
    replayed = await _replay(changes, ctx, cmd, fingerprint)
    if replayed is not None:
        return replayed
    invoice = await changes.resolve_invoice(ctx, invoice_id=cmd.invoice_id, invoice_number=cmd.invoice_number)
    if invoice["kind"] != "invoice":
        raise InvalidArgument(
            [FieldViolation("invoice_ref", "a credit note credits an invoice, not a credit note")]
        )
    _check(cmd, invoice, ctx)  # refused before taking the lock

    async def work(s: Session) -> tuple[Doc, Doc]:
        if await changes.store.invoices.find_one(
            {"tenant_id": tenant.id, "kind": "credit_note", "external_id": cmd.idempotency_key},
            projection={"_id": 1},
            session=s,
        ):
            raise _CreditNoteExists
        inv = await changes.load(s, ctx, invoice["_id"])
        # Checked again on the invoice as it is now: another credit note may have come in between,
        # and what is left at each VAT rate decides this credit note's VAT.
        draft = _check(cmd, inv, ctx)
        amount = draft.totals.gross_minor
        pos = position_of(inv)
        check_can_credit(InvoiceStatus(inv["status"]), pos, amount)
        to_customer_credit = max(0, amount - pos.balance)
        if cmd.credit_note_number:
            number = cmd.credit_note_number
        else:
            # Skips a number the ERP supplied for an earlier credit note (the series stays gapless).
            (number,) = await changes.store.take_free(
                s,
                tenant.id,
                "credit_note",
                1,
                field="invoice_number",
                render=lambda n: f"{tenant.credit_note_prefix}{n}",
            )
        credit_note_id = new_id()
        event_id = new_id()
        credit_note = _credit_note(
            ctx, cmd, draft, inv, credit_note_id=credit_note_id, number=number, fingerprint=fingerprint
        )
        # The creditor's profile as it is now (the credit note's documents show this version).
        credit_note["profile_version"] = await current_version(changes.store, tenant.id, session=s)
        credit_note["seq"] = await changes.store.take_numbers(s, tenant.id, "seq", 1)
        credit_note["history"] = [
            history_entry(
                ctx,
                event_id=event_id,
                type_="issued",
                before="",
                after=credit_note["status"],
                version=1,
                text=f"credit note {number} for invoice {inv['invoice_number']}: {cmd.reason}",
            )
        ]
        new = changed_invoice(
            inv,
            ctx,
            event_id=event_id,
            type_="credited",
            text=f"credit note {number}: {amount} {inv['currency']} credited ({cmd.reason})",
            credited_minor=pos.credited + amount,
            overpaid_minor=pos.overpaid + to_customer_credit,
            credit_note_ids=[*inv.get("credit_note_ids", []), credit_note_id],
            credited_vat=add_credited(inv, draft.totals),
        )
        entry = journal_entry(
            ctx,
            invoice_id=inv["_id"],
            kind="credit_note_issued",
            currency=inv["currency"],
            ref=credit_note_id,
            postings=journal.credit_note_issued(
                draft.totals.net_minor, draft.totals.vat_minor, to_customer_credit=to_customer_credit
            ),
        )
        issued = CreditNoteIssuedData(
            credit_note=summary(credit_note), invoice=summary(new), amount_minor=amount
        )
        events: list[tuple[Event, str]] = [invoice_event(ctx, event_id, inv["_id"], CreditNoteIssued, issued)]
        await changes.store.invoices.insert_one(credit_note, session=s)
        if to_customer_credit:
            events.append(
                await changes.credit_customer(
                    s, ctx, new, to_customer_credit, f"credit note {number} on a paid invoice"
                )
            )
        await changes.save(s, inv, new, journal=[entry], events=events)
        return credit_note, new

    try:
        async with changes.series_lock(tenant.id, "credit_note"):
            cn, inv = await changes.run(work)
    except (DuplicateKeyError, _CreditNoteExists):
        # A retry of the same request raced us (answer with the original), or the number is taken.
        replayed = await _replay(changes, ctx, cmd, fingerprint)
        if replayed is not None:
            return replayed
        raise AlreadyExists(
            f"credit note number {cmd.credit_note_number or '(generated)'} is already used"
        ) from None
    return cn, inv, True


def _check(cmd: IssueCreditNote, inv: Doc, ctx: Ctx) -> CreditDraft:
    position = position_of(inv)
    return check_credit_note(
        cmd,
        invoice_number=inv["invoice_number"],
        invoice_lines=tuple(line_from_doc(d) for d in inv["lines"]),
        invoice_issue_date=date.fromisoformat(inv["issue_date"]),
        already_credited=position.credited,
        left_to_credit=position.left_to_credit,
        left_per_rate=left_by_rate(invoiced_by_rate(inv), credited_by_rate(inv)),
        vat_left_per_rate=left_by_rate(invoiced_vat_by_rate(inv), credited_vat_by_rate(inv)),
        jurisdiction=ctx.tenant.jurisdiction,
        today=ctx.today,
    )


async def _replay(
    changes: Changes, ctx: Ctx, cmd: IssueCreditNote, fingerprint: str
) -> tuple[Doc, Doc, bool] | None:
    """The original answer to a retried request; another payload under the same key is refused."""
    tenant_id = ctx.tenant.id
    existing = await changes.store.invoice(tenant_id, kind="credit_note", external_id=cmd.idempotency_key)
    if existing is None:
        return None
    if existing["request_hash"] != fingerprint:
        raise AlreadyExists(
            f"idempotency key {cmd.idempotency_key!r} was already used for credit note "
            f"{existing['invoice_number']} with a different payload"
        )
    invoice = await changes.store.invoice(tenant_id, invoice_id=existing["credits_invoice_id"])
    assert invoice is not None  # a credit note always points at its invoice
    return existing, invoice, False


def _credit_note(
    ctx: Ctx,
    cmd: IssueCreditNote,
    draft: CreditDraft,
    inv: Doc,
    *,
    credit_note_id: str,
    number: str,
    fingerprint: str,
) -> Doc:
    """The credit note as issued, without its history."""
    issued_on = draft.issue_date.isoformat()
    return {
        **{k: inv[k] for k in _FROM_INVOICE},
        "_id": credit_note_id,
        "kind": "credit_note",
        "external_id": cmd.idempotency_key,
        "request_hash": fingerprint,
        "invoice_number": number,
        "kid": "",
        "issue_date": issued_on,
        "due_date": issued_on,
        **opening_amounts(draft.lines, draft.totals, credited_minor=draft.totals.gross_minor),
        "status": str(InvoiceStatus.CREDITED),
        "dunning_stage": 0,
        "version": 1,
        "credits_invoice_id": inv["_id"],
        "credit_note_ids": [],
        "reason": cmd.reason,
        "created_at": ctx.now,
        "updated_at": ctx.now,
        "origin_traceparent": ctx.traceparent,
        "origin_trace_id": ctx.trace_id,
    }
