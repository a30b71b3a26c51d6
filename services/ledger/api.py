"""The ERP API: `fordring.ledger.v1.LedgerService` over gRPC."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import date
from typing import Any

import grpc
from fordring.common.v1 import common_pb2
from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.ledger.v1 import ledger_pb2_grpc
from opentelemetry import trace

from services.common import attributes as attr
from services.common.clock import Clock, parse_iso_date
from services.common.errors import FieldViolation, InvalidArgument, NotFound, OutOfRange, Violations
from services.common.mongo import Doc
from services.common.tenancy import current_tenant
from services.common.text import check_text
from services.ledger.changes import Changes
from services.ledger.convert import (
    customer_from_pb,
    customer_to_pb,
    history_to_pb,
    invoice_to_pb,
    issue_invoice_from_pb,
    lines_from_pb,
    money,
    profile_to_pb,
    status_from_pb,
)
from services.ledger.credit_notes import issue_credit_note
from services.ledger.customers import upsert_customer
from services.ledger.documents import Ctx, request_ctx
from services.ledger.domain.aging import aging
from services.ledger.domain.invoice import IssueCreditNote, check_issue_invoice
from services.ledger.issuing import Issuer, with_default_terms
from services.ledger.lifecycle import write_off
from services.ledger.listing import InvoiceFilter, decode_page_token, encode_page_token, list_invoices
from services.ledger.metrics import (
    CREDIT_NOTES_ISSUED,
    INVOICES_ISSUED,
    INVOICES_WRITTEN_OFF,
    PAYMENTS_APPLIED,
)
from services.ledger.payments import AllocationRequest, RecordPayment, record_payment
from services.ledger.profiles import profile_at
from services.ledger.store import customer_id_for
from services.ledger.watch import WatchHub

log = logging.getLogger(__name__)
Context = grpc.aio.ServicerContext[Any, Any]
MAX_PAGE = 500
DEFAULT_PAGE = 50
# A page stays under every client's default 4 MB message limit, whatever its invoices hold.
PAGE_BYTES = 3 * 1024 * 1024
MAX_REF = 128
INT64_MAX = 2**63 - 1


class LedgerApi(ledger_pb2_grpc.LedgerServiceServicer):
    def __init__(self, changes: Changes, issuer: Issuer, clock: Clock, *, watch: WatchHub) -> None:
        self._changes = changes
        self._watch = watch
        self._store = changes.store
        self._issuer = issuer
        self._clock = clock

    def _ctx(self) -> Ctx:
        return request_ctx(self._clock)

    @staticmethod
    def _tag(doc: Doc) -> None:
        span = trace.get_current_span()
        span.set_attribute(attr.INVOICE_ID, doc["_id"])
        span.set_attribute(attr.INVOICE_NUMBER, doc["invoice_number"])

    # --- customers -------------------------------------------------------------------------------

    async def UpsertCustomer(
        self, request: pb.UpsertCustomerRequest, context: Context
    ) -> pb.UpsertCustomerResponse:
        ctx = self._ctx()
        doc, created = await upsert_customer(self._changes, ctx, customer_from_pb(request.customer))
        return pb.UpsertCustomerResponse(
            customer=customer_to_pb(doc, ctx.tenant.default_currency), created=created
        )

    async def _customer(self, tenant_id: str, customer_id: str, number: str) -> Doc:
        if not (customer_id or number):
            raise InvalidArgument([FieldViolation("ref", "give customer_id or customer_number")])
        doc = await self._store.customer(tenant_id, customer_id=customer_id, number=number)
        if doc is None:
            raise NotFound(f"no customer {customer_id or number}")
        return doc

    async def GetCustomer(self, request: pb.GetCustomerRequest, context: Context) -> pb.GetCustomerResponse:
        tenant = current_tenant()
        doc = await self._customer(tenant.id, request.customer_id, request.customer_number)
        return pb.GetCustomerResponse(customer=customer_to_pb(doc, tenant.default_currency))

    async def ListFlaggedCustomers(
        self, request: pb.ListFlaggedCustomersRequest, context: Context
    ) -> pb.ListFlaggedCustomersResponse:
        tenant = current_tenant()
        v = Violations()
        size = request.page.page_size or DEFAULT_PAGE
        if not 0 < size <= MAX_PAGE:
            v.add("page.page_size", f"must be 1..{MAX_PAGE}")
        after = ""
        if request.page.page_token:
            try:
                after = base64.urlsafe_b64decode(request.page.page_token.encode()).decode()
            except (ValueError, UnicodeDecodeError):
                v.add("page.page_token", "not a page token of this list")
        v.raise_if_any()
        docs = await self._store.flagged_customers(tenant.id, after_number=after, limit=size + 1)
        shown = docs[:size]
        token = (
            base64.urlsafe_b64encode(shown[-1]["number"].encode()).decode()
            if len(docs) > size and shown
            else ""
        )
        return pb.ListFlaggedCustomersResponse(
            customers=[customer_to_pb(d, tenant.default_currency) for d in shown],
            page=common_pb2.PageResponse(next_page_token=token),
        )

    # --- invoices --------------------------------------------------------------------------------

    async def IssueInvoice(
        self, request: pb.IssueInvoiceRequest, context: Context
    ) -> pb.IssueInvoiceResponse:
        if request.validate_only:
            tenant = current_tenant()
            cmd = await with_default_terms(self._store, tenant, issue_invoice_from_pb(request))
            check_issue_invoice(cmd, jurisdiction=tenant.jurisdiction, kid_scheme=tenant.kid_scheme)
            return pb.IssueInvoiceResponse()
        doc, created = await self._issuer.issue(self._ctx(), issue_invoice_from_pb(request))
        self._tag(doc)
        trace.get_current_span().set_attribute(attr.IDEMPOTENCY_REPLAY, not created)
        if created:
            INVOICES_ISSUED.add(1, {"currency": doc["currency"]})
        return pb.IssueInvoiceResponse(invoice=invoice_to_pb(doc), created=created)

    async def IssueCreditNote(
        self, request: pb.IssueCreditNoteRequest, context: Context
    ) -> pb.IssueCreditNoteResponse:
        ctx = self._ctx()
        cmd = IssueCreditNote(
            idempotency_key=request.idempotency_key,
            invoice_id=request.invoice_id,
            invoice_number=request.invoice_number,
            issue_date=request.issue_date,
            lines=lines_from_pb(request.lines),
            reason=request.reason,
            credit_note_number=request.credit_note_number,
        )
        credit_note, invoice, created = await issue_credit_note(self._changes, ctx, cmd)
        self._tag(invoice)
        if created:
            CREDIT_NOTES_ISSUED.add(1)
        return pb.IssueCreditNoteResponse(
            credit_note=invoice_to_pb(credit_note), invoice=invoice_to_pb(invoice), created=created
        )

    async def _invoice(self, tenant_id: str, ref: str, value: str) -> Doc:
        if not ref:
            raise InvalidArgument(
                [FieldViolation("ref", "give invoice_id, invoice_number, external_id or kid")]
            )
        if not value.strip():
            raise InvalidArgument([FieldViolation(ref, "must not be empty")])
        if len(value) > MAX_REF:
            raise InvalidArgument([FieldViolation(ref, f"at most {MAX_REF} characters")])
        query = {ref: value, **({"kind": "invoice"} if ref == "external_id" else {})}
        doc = await self._store.invoice(tenant_id, **query)
        if doc is None:
            raise NotFound(f"no invoice with {ref} {value!r}")
        self._tag(doc)
        return doc

    async def GetInvoice(self, request: pb.GetInvoiceRequest, context: Context) -> pb.GetInvoiceResponse:
        ref = request.WhichOneof("ref") or ""
        doc = await self._invoice(current_tenant().id, ref, getattr(request, ref) if ref else "")
        return pb.GetInvoiceResponse(invoice=invoice_to_pb(doc))

    async def GetInvoices(self, request: pb.GetInvoicesRequest, context: Context) -> pb.GetInvoicesResponse:
        ids = _batch_ids(request.invoice_ids, "invoice_ids")
        docs = await self._store.invoices_by_ids(current_tenant().id, ids)
        return pb.GetInvoicesResponse(invoices=[invoice_to_pb(d) for d in docs])

    async def GetCustomers(
        self, request: pb.GetCustomersRequest, context: Context
    ) -> pb.GetCustomersResponse:
        tenant = current_tenant()
        if request.search.strip() and not request.customer_ids:
            v = Violations()
            check_text(request.search, "search", 200, v)
            v.raise_if_any()
            docs = await self._store.search_customers(tenant.id, request.search.strip(), limit=50)
        else:
            ids = _batch_ids(request.customer_ids, "customer_ids")
            docs = await self._store.customers_by_ids(tenant.id, ids)
        return pb.GetCustomersResponse(customers=[customer_to_pb(d, tenant.default_currency) for d in docs])

    async def ListInvoices(
        self, request: pb.ListInvoicesRequest, context: Context
    ) -> pb.ListInvoicesResponse:
        tenant = current_tenant()
        v = Violations()
        size, after = _page(request.page, v)
        for name in ("due_after", "due_before"):
            _optional_date(getattr(request, name), name, v)
        statuses = []
        for i, value in enumerate(request.statuses):
            status = status_from_pb(value)
            if not status:
                v.add(f"statuses[{i}]", f"{value} is not an invoice status")
            statuses.append(status)
        kinds = {
            pb.INVOICE_KIND_UNSPECIFIED: "",
            pb.INVOICE_KIND_INVOICE: "invoice",
            pb.INVOICE_KIND_CREDIT_NOTE: "credit_note",
        }
        if request.kind not in kinds:
            v.add("kind", f"{request.kind} is not an invoice kind")
        check_text(request.customer_number, "customer_number", 64, v)
        v.raise_if_any()
        which = InvoiceFilter(
            statuses=statuses,
            customer_id=customer_id_for(tenant.id, request.customer_number)
            if request.customer_number
            else "",
            due_after=request.due_after,
            due_before=request.due_before,
            kind=kinds[request.kind],
        )
        docs = await list_invoices(self._store, tenant.id, which, after=after, limit=size + 1)
        invoices, token = _bounded_page(docs, size)
        return pb.ListInvoicesResponse(invoices=invoices, page=common_pb2.PageResponse(next_page_token=token))

    async def GetInvoiceHistory(
        self, request: pb.GetInvoiceHistoryRequest, context: Context
    ) -> pb.GetInvoiceHistoryResponse:
        ref = request.WhichOneof("ref") or ""
        doc = await self._invoice(current_tenant().id, ref, getattr(request, ref) if ref else "")
        return pb.GetInvoiceHistoryResponse(entries=[history_to_pb(e) for e in doc.get("history", [])])

    async def RecordPayment(
        self, request: pb.RecordPaymentRequest, context: Context
    ) -> pb.RecordPaymentResponse:
        cmd = RecordPayment(
            idempotency_key=request.idempotency_key,
            amount_minor=request.amount.minor_units,
            currency=request.amount.currency,
            paid_on=request.paid_on,
            customer_number=request.customer_number,
            allocations=tuple(
                AllocationRequest(a.invoice_id, a.invoice_number, a.amount_minor) for a in request.allocations
            ),
            reference=request.reference,
            payer_account=request.payer_account,
        )
        result = await record_payment(self._changes, self._ctx(), cmd)
        trace.get_current_span().set_attribute(attr.PAYMENT_ID, result.payment_id)
        if result.created:
            PAYMENTS_APPLIED.add(1, {"method": "manual"})
        return pb.RecordPaymentResponse(
            payment_id=result.payment_id,
            invoices=[invoice_to_pb(d) for d in result.invoices],
            unallocated=money(result.unallocated_minor, result.currency),
            created=result.created,
        )

    async def WriteOffInvoice(
        self, request: pb.WriteOffInvoiceRequest, context: Context
    ) -> pb.WriteOffInvoiceResponse:
        doc, created = await write_off(
            self._changes,
            self._ctx(),
            invoice_id=request.invoice_id,
            invoice_number=request.invoice_number,
            key=request.idempotency_key,
            reason=request.reason,
        )
        self._tag(doc)
        if created:
            INVOICES_WRITTEN_OFF.add(1)
        return pb.WriteOffInvoiceResponse(invoice=invoice_to_pb(doc), created=created)

    async def WatchInvoice(
        self, request: pb.WatchInvoiceRequest, context: Context
    ) -> AsyncIterator[pb.WatchInvoiceResponse]:
        tenant_id = current_tenant().id
        ref = request.WhichOneof("ref") or ""
        found = await self._invoice(tenant_id, ref, getattr(request, ref) if ref else "")
        async with self._watch.watch(tenant_id, found["_id"]) as watcher:
            # Read again now that the watcher is registered: whatever changes after this read reaches it.
            current = await self._store.invoice(tenant_id, invoice_id=found["_id"])
            yield pb.WatchInvoiceResponse(invoice=invoice_to_pb(watcher.begin(current or found)))
            while (doc := await watcher.next()) is not None:
                yield _watch_message(doc)

    async def GetCreditorProfile(
        self, request: pb.GetCreditorProfileRequest, context: Context
    ) -> pb.GetCreditorProfileResponse:
        found = await profile_at(self._store, current_tenant(), request.version)
        return pb.GetCreditorProfileResponse(profile=profile_to_pb(found.profile, found.made_at))

    async def GetCustomerStatement(
        self, request: pb.GetCustomerStatementRequest, context: Context
    ) -> pb.GetCustomerStatementResponse:
        ctx = self._ctx()
        v = Violations()
        size, after = _page(request.page, v)
        as_of = _optional_date(request.as_of, "as_of", v) or ctx.today
        v.raise_if_any()
        customer = await self._customer(ctx.tenant.id, request.customer_id, request.customer_number)
        # Totals and aging over every open item (a few fields each); the items themselves a page at a time.
        open_items = await self._store.open_items_of(ctx.tenant.id, customer["_id"])
        currency = open_items[0]["currency"] if open_items else ctx.tenant.default_currency
        same = [d for d in open_items if d["currency"] == currency]
        buckets = aging(((date.fromisoformat(d["due_date"]), d["balance_minor"]) for d in same), as_of)
        balances: dict[str, int] = customer.get("credit_balances") or {}
        total = sum(d["balance_minor"] for d in same)
        if total > INT64_MAX or any(b.amount_minor > INT64_MAX for b in buckets):
            raise OutOfRange(
                f"the customer's open {currency} total ({total}) is beyond what the API carries "
                "(int64 minor units); list the open items with ListInvoices instead"
            )
        which = InvoiceFilter(customer_id=customer["_id"], open_only=True)
        docs = await list_invoices(self._store, ctx.tenant.id, which, after=after, limit=size + 1)
        items, token = _bounded_page(docs, size)
        return pb.GetCustomerStatementResponse(
            customer=customer_to_pb(customer, currency),
            open_items=items,
            total_open=money(total, currency),
            credit_balance=money(balances.get(currency, 0), currency),
            aging=[
                pb.AgingBucket(label=b.label, amount=money(b.amount_minor, currency), count=b.count)
                for b in buckets
            ],
            as_of=as_of.isoformat(),
            page=common_pb2.PageResponse(next_page_token=token),
            open_item_count=len(open_items),
        )


def _page(page: common_pb2.PageRequest, v: Violations) -> tuple[int, int]:
    """The page size (default 50, at most 500) and the place to continue after."""
    size = page.page_size or DEFAULT_PAGE
    if not 0 < size <= MAX_PAGE:
        v.add("page.page_size", f"must be 1..{MAX_PAGE}")
    after = 0
    if page.page_token:
        try:
            after = decode_page_token(page.page_token)
        except ValueError as exc:
            v.add("page.page_token", str(exc))
    return size, after


def _optional_date(text: str, field: str, v: Violations) -> date | None:
    if not text:
        return None
    try:
        return parse_iso_date(text)
    except ValueError as exc:
        v.add(field, str(exc))
        return None


def _bounded_page(docs: list[Doc], size: int) -> tuple[list[pb.Invoice], str]:
    """Up to `size` invoices, fewer when they would make the answer larger than PAGE_BYTES (at least
    one); the token of the next page, or "" when there is none."""
    invoices: list[pb.Invoice] = []
    used = 0
    for doc in docs[:size]:
        message = invoice_to_pb(doc)
        used += message.ByteSize()
        if invoices and used > PAGE_BYTES:
            break
        invoices.append(message)
    more = len(docs) > len(invoices)
    return invoices, encode_page_token(docs[len(invoices) - 1]["seq"]) if more and invoices else ""


def _watch_message(doc: Doc) -> pb.WatchInvoiceResponse:
    history = doc.get("history") or []
    change = history_to_pb(history[-1]) if history else None
    return pb.WatchInvoiceResponse(invoice=invoice_to_pb(doc), change=change)


MAX_BATCH_IDS = 500


def _batch_ids(ids: Sequence[str], field: str) -> list[str]:
    unique = list(dict.fromkeys(ids))
    if not unique or len(unique) > MAX_BATCH_IDS or any(not i or len(i) > 128 for i in unique):
        raise InvalidArgument([FieldViolation(field, f"1 to {MAX_BATCH_IDS} ids of at most 128 characters")])
    return unique
