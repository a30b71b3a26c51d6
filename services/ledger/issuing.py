"""IssueInvoice with group commit.

Gapless numbering makes every invoice of a tenant touch one counter; one transaction per invoice
would make concurrent calls conflict on it and retry. Instead, calls that arrive while a batch is
being written wait for the next batch, and each batch is one transaction: the counter moves once,
invoices, journal entries and outbox events are written with one insert each. A batch that fails
(a duplicate key raced in from another replica) is retried one invoice at a time, so one bad
request never fails the others.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from opentelemetry import trace
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.common import attributes as attr
from services.common.errors import AlreadyExists, FieldViolation, InvalidArgument
from services.common.events import InvoiceIssued, InvoiceIssuedData
from services.common.ids import new_id
from services.common.kid import KidScheme, generate_kid
from services.common.mongo import Doc, Session, in_transaction
from services.common.outbox import outbox_doc
from services.common.telemetry import context_from_traceparent, link_to, traced
from services.common.tenancy import Tenant
from services.ledger.changes import invoice_event
from services.ledger.customers import customer_upserted, updated_customer
from services.ledger.documents import (
    Ctx,
    customer_fields,
    history_entry,
    initial_status,
    journal_entry,
    opening_amounts,
    summary,
)
from services.ledger.domain import journal
from services.ledger.domain.invoice import InvoiceDraft, IssueInvoice, check_issue_invoice
from services.ledger.profiles import current_version, profile_at
from services.ledger.store import ConcurrentChange, LedgerStore, customer_id_for

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

MAX_BATCH: Final = 256


@dataclass
class _Pending:
    ctx: Ctx
    cmd: IssueInvoice
    draft: InvoiceDraft
    fingerprint: str
    customer: Doc = field(default_factory=dict)
    # How the customer is written with the invoice: "insert", "replace" or "" (unchanged).
    customer_write: str = ""
    future: asyncio.Future[tuple[Doc, bool]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


async def with_default_terms(store: LedgerStore, tenant: Tenant, cmd: IssueInvoice) -> IssueInvoice:
    """An invoice without a due date or payment terms gets the creditor's default terms (its profile)."""
    if cmd.due_date or cmd.payment_terms_days:
        return cmd
    profile = (await profile_at(store, tenant)).profile
    return dataclasses.replace(cmd, payment_terms_days=profile.payment_terms_days)


class Issuer:
    def __init__(
        self, store: LedgerStore, on_commit: Callable[[], None], *, max_batch: int = MAX_BATCH
    ) -> None:
        self._store = store
        self._on_commit = on_commit
        self._max_batch = max_batch
        self._queues: dict[str, list[_Pending]] = defaultdict(list)
        self._workers: dict[str, asyncio.Task[None]] = {}
        self.batches = 0

    async def issue(self, ctx: Ctx, cmd: IssueInvoice) -> tuple[Doc, bool]:
        """Issue one invoice; returns it and whether it was created now (False: a retry)."""
        tenant = ctx.tenant
        # The request as the ERP sent it identifies a retry, even when the default terms changed since.
        fingerprint = cmd.fingerprint()
        cmd = await with_default_terms(self._store, tenant, cmd)
        draft = check_issue_invoice(cmd, jurisdiction=tenant.jurisdiction, kid_scheme=tenant.kid_scheme)
        pending = _Pending(ctx, cmd, draft, fingerprint)
        self._queues[tenant.id].append(pending)
        worker = self._workers.get(tenant.id)
        if worker is None or worker.done():
            # A fresh context: the worker serves many calls and must not run inside the first one's trace.
            self._workers[tenant.id] = asyncio.create_task(
                self._drain(tenant.id), context=contextvars.Context()
            )
        return await pending.future

    async def stop(self) -> None:
        for task in list(self._workers.values()):
            await asyncio.gather(task, return_exceptions=True)

    async def _replays(self, tenant_id: str, leaders: dict[str, _Pending]) -> list[_Pending]:
        """Answer retries with the original invoice (one query for the batch); return the new ones."""
        found = await self._store.invoices.find(
            {"tenant_id": tenant_id, "kind": "invoice", "external_id": {"$in": list(leaders)}},
            projection={"history": 0},
        ).to_list()
        for doc in found:
            p = leaders[doc["external_id"]]
            try:
                _succeed(p, replay(doc, p.fingerprint), False)
            except AlreadyExists as exc:
                _fail(p, exc)
        return [p for p in leaders.values() if not p.future.done()]

    async def _resolve_customers(self, tenant_id: str, items: list[_Pending]) -> list[_Pending]:
        """Attach each invoice's customer (one query for the batch) and decide how it is written.

        The ERP is the master of customer data: an embedded customer that differs from what is
        stored replaces it. Customer ids derive from (tenant, number), so replicas agree on them.
        """
        ids = {customer_id_for(tenant_id, p.draft.customer.number) for p in items if p.draft.customer}
        numbers = {p.cmd.customer_number for p in items if p.draft.customer is None}
        # Two index-backed queries rather than one `$or` (which the embedded server answers by a scan).
        found = []
        if ids:
            by_ids = await self._store.customers.find({"_id": {"$in": sorted(ids)}}).to_list()
            found += [d for d in by_ids if d["tenant_id"] == tenant_id]
        if numbers:
            found += await self._store.customers.find(
                {"tenant_id": tenant_id, "number": {"$in": sorted(numbers)}}
            ).to_list()
        by_id = {d["_id"]: d for d in found}
        by_number = {d["number"]: d for d in found}
        written: dict[str, Doc] = {}
        ready = []
        for p in items:
            if p.draft.customer is None:
                stored = by_number.get(p.cmd.customer_number)
                if stored is None:
                    _fail(
                        p,
                        InvalidArgument(
                            [
                                FieldViolation(
                                    "customer_number",
                                    f"no customer {p.cmd.customer_number!r}; "
                                    "upsert it first or embed it in the request",
                                )
                            ]
                        ),
                    )
                    continue
                p.customer = stored
                ready.append(p)
                continue
            cid = customer_id_for(tenant_id, p.draft.customer.number)
            fields = customer_fields(p.draft.customer)
            current = written.get(cid) or by_id.get(cid)
            updated = updated_customer(current, fields, customer_id=cid, tenant_id=tenant_id, now=p.ctx.now)
            if updated is None:
                assert current is not None
                p.customer = current
            else:
                p.customer = updated
                p.customer_write = "replace" if cid in by_id else "insert"
                written[cid] = p.customer
            ready.append(p)
        return ready

    async def _drain(self, tenant_id: str) -> None:
        queue = self._queues[tenant_id]
        while queue:
            batch, queue[:] = queue[: self._max_batch], queue[self._max_batch :]
            await self._commit(batch)

    async def _commit(self, batch: list[_Pending]) -> None:
        leaders: dict[str, _Pending] = {}
        followers: list[_Pending] = []
        for p in batch:
            if p.cmd.idempotency_key in leaders:
                followers.append(p)
            else:
                leaders[p.cmd.idempotency_key] = p
        tenant_id = batch[0].ctx.tenant.id
        try:
            firsts = await self._resolve_customers(tenant_id, await self._replays(tenant_id, leaders))
        except Exception as exc:  # handed to every waiting caller
            firsts = []
            for p in leaders.values():
                _fail(p, exc)
        try:
            if firsts:
                await self._write_batch(firsts)
        except (DuplicateKeyError, BulkWriteError, ConcurrentChange):
            if len(firsts) == 1:
                await self._resolve_duplicate(firsts[0])
            else:
                for p in firsts:
                    try:
                        await self._write_batch([p])
                    except (DuplicateKeyError, BulkWriteError, ConcurrentChange):
                        await self._resolve_duplicate(p)
                    except Exception as exc:  # handed to the waiting caller
                        _fail(p, exc)
        except Exception as exc:  # logged, and handed to every waiting caller
            log.exception("issuing a batch of %d invoices failed", len(firsts))
            for p in firsts:
                _fail(p, exc)
        for p in followers:
            leader = leaders[p.cmd.idempotency_key]
            if p.fingerprint != leader.fingerprint:
                # Another payload under the same key: its answer depends on what is stored, not on
                # the leader's fate (the leader may have been refused for its own payload). It is
                # asked again in the next batch, which sees what this one stored.
                self._queues[tenant_id].append(p)
                continue
            try:
                doc, _ = await asyncio.shield(leader.future)
                _succeed(p, doc, False)
            except Exception as exc:  # the same request: the leader's failure is the follower's too
                _fail(p, exc)

    async def _resolve_duplicate(self, p: _Pending) -> None:
        """A unique index refused the invoice: a retry that raced us, or a number/KID already used."""
        tenant_id = p.ctx.tenant.id
        try:
            existing = await self._store.invoice(tenant_id, kind="invoice", external_id=p.cmd.idempotency_key)
            if existing is not None:
                _succeed(p, replay(existing, p.fingerprint), False)
                return
            taken = await self._taken_by_another(p)
            if taken is not None:
                _fail(p, taken)
                return
            # Another replica wrote the same customer, or a generated KID met an ERP-supplied one:
            # read the customer again and write with the next numbers.
            p.customer_write = ""
            ready = await self._resolve_customers(tenant_id, [p])
            if ready:
                await self._write_batch(ready)
        except Exception as exc:  # handed to the waiting caller
            _fail(p, exc)

    async def _taken_by_another(self, p: _Pending) -> Exception | None:
        """The ERP's own invoice number or KID, if another invoice has it already."""
        tenant_id = p.ctx.tenant.id
        if p.cmd.invoice_number and await self._store.invoice(tenant_id, invoice_number=p.cmd.invoice_number):
            return AlreadyExists(f"invoice number {p.cmd.invoice_number} is already used")
        if p.cmd.kid and await self._store.invoice(tenant_id, kid=p.cmd.kid):
            return InvalidArgument(
                [FieldViolation("kid", f"KID {p.cmd.kid} is already used by another invoice")]
            )
        return None

    async def _write_batch(self, items: list[_Pending]) -> None:
        # One invoice: the batch runs inside its call's trace. Several: a span of its own, linked to
        # each call.
        parent = context_from_traceparent(items[0].ctx.traceparent) if len(items) == 1 else None
        links = [] if len(items) == 1 else [link for p in items for link in link_to(p.ctx.traceparent)]
        with traced("ledger.issue_batch", context=parent, links=links) as span:
            span.set_attribute(attr.BATCH_SIZE, len(items))
            docs = await in_transaction(self._store.client, lambda s: self._write(s, items))
        self.batches += 1
        self._on_commit()
        for p, doc in zip(items, docs, strict=True):
            _succeed(p, doc, True)

    async def _write(self, session: Session, items: list[_Pending]) -> list[Doc]:
        store = self._store
        tenant = items[0].ctx.tenant
        numbered = [p for p in items if not p.cmd.invoice_number]
        needs_kid = [p for p in items if not p.cmd.kid]
        # Numbers and KIDs the ERP supplied (stored, or in this batch) are skipped by the counters.
        free_numbers = await store.take_free(
            session,
            tenant.id,
            "invoice",
            len(numbered),
            field="invoice_number",
            render=lambda n: str(tenant.invoice_number_start - 1 + n),
            reserved={p.cmd.invoice_number for p in items if p.cmd.invoice_number},
        )
        scheme = KidScheme(tenant.kid_scheme)
        free_kids = await store.take_free(
            session,
            tenant.id,
            "kid",
            len(needs_kid),
            field="kid",
            render=lambda n: generate_kid(n, length=tenant.kid_length, scheme=scheme),
            reserved={p.cmd.kid for p in items if p.cmd.kid},
        )
        # Each invoice's place in the tenant's sequence (listing pages read windows of it).
        first_seq = await store.take_numbers(session, tenant.id, "seq", len(items))
        # The creditor's profile as it is now: the invoices' documents show this version for good.
        profile_version = await current_version(store, tenant.id, session=session)
        numbers = {id(p): number for p, number in zip(numbered, free_numbers, strict=True)}
        kids = {id(p): kid for p, kid in zip(needs_kid, free_kids, strict=True)}
        customer_writes = {p.customer["_id"]: p for p in items if p.customer_write}
        inserts = [p.customer for p in customer_writes.values() if p.customer_write == "insert"]
        if inserts:
            await store.customers.insert_many(inserts, session=session)
        for cid, p in customer_writes.items():
            if p.customer_write == "replace":
                result = await store.customers.replace_one(
                    {"_id": cid, "version": p.customer["version"] - 1}, p.customer, session=session
                )
                if result.matched_count != 1:
                    raise ConcurrentChange(cid)
        invoices: list[Doc] = []
        entries: list[Doc] = []
        outbox: list[Doc] = []
        for i, p in enumerate(items):
            doc = self._invoice_doc(
                p, numbers.get(id(p)) or p.cmd.invoice_number, kids.get(id(p)) or p.cmd.kid, profile_version
            )
            doc["seq"] = first_seq + i
            invoices.append(doc)
            entries.append(
                journal_entry(
                    p.ctx,
                    invoice_id=doc["_id"],
                    kind="invoice_issued",
                    currency=doc["currency"],
                    postings=journal.invoice_issued(doc["net_minor"], doc["vat_minor"]),
                )
            )
            event_id = doc["history"][0]["event_id"]
            issued = InvoiceIssuedData(invoice=summary(doc))
            outbox.append(
                outbox_doc(
                    *invoice_event(p.ctx, event_id, doc["_id"], InvoiceIssued, issued), p.ctx.traceparent
                )
            )
        outbox.extend(
            outbox_doc(*customer_upserted(p.ctx, p.customer), p.ctx.traceparent)
            for p in customer_writes.values()
        )
        await store.invoices.insert_many(invoices, session=session)
        await store.add_journal(session, entries)
        await store.outbox.insert_many(outbox, session=session)
        return invoices

    @staticmethod
    def _invoice_doc(p: _Pending, number: str, kid: str, profile_version: int) -> Doc:
        return invoice_doc(
            p.ctx,
            p.cmd,
            p.draft,
            p.customer,
            fingerprint=p.fingerprint,
            number=number,
            kid=kid,
            profile_version=profile_version,
        )


def invoice_doc(
    ctx: Ctx,
    cmd: IssueInvoice,
    draft: InvoiceDraft,
    customer: Doc,
    *,
    fingerprint: str,
    number: str,
    kid: str,
    profile_version: int,
) -> Doc:
    """An invoice as IssueInvoice stores it (without its place in the tenant's sequence, `seq`)."""
    totals = draft.totals
    invoice_id = new_id()
    doc: Doc = {
        "_id": invoice_id,
        "tenant_id": ctx.tenant.id,
        "kind": "invoice",
        "external_id": cmd.idempotency_key,
        "request_hash": fingerprint,
        "invoice_number": number,
        "kid": kid,
        "customer_id": customer["_id"],
        "customer_number": customer["number"],
        "customer_name": customer["name"],
        "customer_kind": customer["kind"],
        "issue_date": draft.issue_date.isoformat(),
        "due_date": draft.due_date.isoformat(),
        "currency": draft.currency,
        **opening_amounts(draft.lines, totals),
        "dunning_stage": 0,
        "version": 1,
        "buyer_reference": cmd.buyer_reference,
        "order_reference": cmd.order_reference,
        "contract_reference": cmd.contract_reference,
        "language": draft.language or customer.get("language", ""),
        "credits_invoice_id": "",
        "credit_note_ids": [],
        "created_at": ctx.now,
        "updated_at": ctx.now,
        "origin_traceparent": ctx.traceparent,
        "origin_trace_id": ctx.trace_id,
        "profile_version": profile_version,
        # Only when the ERP said (None: the dunning policy decides).
        **({} if cmd.reminder_fee_agreed is None else {"reminder_fee_agreed": cmd.reminder_fee_agreed}),
    }
    doc["status"] = initial_status(doc, ctx.today)
    doc["history"] = [
        history_entry(
            ctx,
            event_id=new_id(),
            type_="issued",
            before="",
            after=doc["status"],
            version=1,
            text=f"invoice {number} issued, {totals.gross_minor} {draft.currency} due {draft.due_date}",
        )
    ]
    return doc


def replay(existing: Doc, fingerprint: str) -> Doc:
    """The idempotent retry: the same request gets the original; another payload is refused."""
    if existing.get("request_hash") != fingerprint:
        raise AlreadyExists(
            f"idempotency key {existing['external_id']!r} was already used for invoice "
            f"{existing['invoice_number']} with a different payload"
        )
    return existing


def _succeed(p: _Pending, doc: Doc, created: bool) -> None:
    if not p.future.done():
        p.future.set_result((doc, created))


def _fail(p: _Pending, exc: BaseException) -> None:
    if not p.future.done():
        p.future.set_exception(exc)
