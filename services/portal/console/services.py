"""The other services as the console reads and asks them: every call on behalf of the signed-in
account's tenant (from its session, never from the request)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from fordring.common.v1 import common_pb2 as common_pb
from fordring.dispatcher.v1 import dispatcher_pb2 as dispatcher_pb
from fordring.dispatcher.v1 import dispatcher_pb2_grpc
from fordring.dunning.v1 import dunning_pb2 as dunning_pb
from fordring.dunning.v1 import dunning_pb2_grpc
from fordring.ledger.v1 import ledger_pb2 as ledger_pb
from fordring.ledger.v1 import ledger_pb2_grpc, notes_pb2, notes_pb2_grpc, terms_pb2, terms_pb2_grpc
from fordring.matcher.v1 import matcher_pb2 as matcher_pb
from fordring.matcher.v1 import matcher_pb2_grpc
from fordring.renderer.v1 import renderer_pb2 as renderer_pb
from fordring.renderer.v1 import renderer_pb2_grpc

from services.common.errors import NotFound
from services.portal.clients import Clients, translated

_STUBS: dict[tuple[str, str], Any] = {
    ("ledger", "ledger"): ledger_pb2_grpc.LedgerServiceStub,
    ("ledger", "notes"): notes_pb2_grpc.InvoiceNoteServiceStub,
    ("ledger", "terms"): terms_pb2_grpc.InvoiceTermsServiceStub,
    ("renderer", "renderer"): renderer_pb2_grpc.RendererServiceStub,
    ("dispatcher", "dispatcher"): dispatcher_pb2_grpc.DispatcherServiceStub,
    ("matcher", "matcher"): matcher_pb2_grpc.MatcherServiceStub,
    ("dunning", "dunning"): dunning_pb2_grpc.DunningServiceStub,
}
_REFUSALS = frozenset(
    {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ABORTED}
)
# What a dashboard reads at most (a page of 500 at a time): enough for a picture, bounded in cost.
SCAN_LIMIT = 2000


class Refused(Exception):
    """The service refused what the operator asked (the message says why)."""


def page(size: int = 100, token: str = "") -> common_pb.PageRequest:
    return common_pb.PageRequest(page_size=size, page_token=token)


class Services:
    def __init__(self, clients: Clients, tenant_id: str) -> None:
        if not tenant_id:
            raise ValueError("the console acts for a tenant")
        self.clients = clients
        self.tenant_id = tenant_id

    async def _ask(self, service: str, name: str, method: str, request: Any, what: str) -> Any:
        stub = _STUBS[(service, name)](self.clients.channel(service))
        try:
            return await getattr(stub, method)(
                request, metadata=self.clients.metadata(self.tenant_id), timeout=20
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in _REFUSALS:
                raise Refused(error.details() or error.code().name) from None
            raise translated(error, f"{service} service", what) from None

    # --- ledger ---------------------------------------------------------------------------------

    async def invoice(self, **ref: str) -> ledger_pb.Invoice:
        reply: ledger_pb.GetInvoiceResponse = await self._ask(
            "ledger", "ledger", "GetInvoice", ledger_pb.GetInvoiceRequest(**ref), "that invoice"
        )
        return reply.invoice

    async def find_invoice(self, **ref: str) -> ledger_pb.Invoice | None:
        try:
            return await self.invoice(**ref)
        except (NotFound, Refused):
            return None

    async def invoices_by_ids(self, ids: Sequence[str]) -> list[ledger_pb.Invoice]:
        if not ids:
            return []
        reply: ledger_pb.GetInvoicesResponse = await self._ask(
            "ledger", "ledger", "GetInvoices", ledger_pb.GetInvoicesRequest(invoice_ids=ids), "invoices"
        )
        return list(reply.invoices)

    async def history(self, invoice_id: str) -> list[ledger_pb.HistoryEntry]:
        reply: ledger_pb.GetInvoiceHistoryResponse = await self._ask(
            "ledger",
            "ledger",
            "GetInvoiceHistory",
            ledger_pb.GetInvoiceHistoryRequest(invoice_id=invoice_id),
            "the invoice's history",
        )
        return list(reply.entries)

    async def invoices(
        self,
        *,
        statuses: Sequence[ledger_pb.InvoiceStatus.ValueType] = (),
        customer_number: str = "",
        size: int = 100,
        token: str = "",
    ) -> tuple[list[ledger_pb.Invoice], str]:
        reply: ledger_pb.ListInvoicesResponse = await self._ask(
            "ledger",
            "ledger",
            "ListInvoices",
            ledger_pb.ListInvoicesRequest(
                statuses=statuses,
                customer_number=customer_number,
                kind=ledger_pb.INVOICE_KIND_INVOICE,
                page=page(size, token),
            ),
            "invoices",
        )
        return list(reply.invoices), reply.page.next_page_token

    async def all_invoices(self, limit: int = SCAN_LIMIT) -> list[ledger_pb.Invoice]:
        found: list[ledger_pb.Invoice] = []
        token = ""
        while len(found) < limit:
            batch, token = await self.invoices(size=500, token=token)
            found += batch
            if not token:
                break
        return found[:limit]

    async def customers(self, *, ids: Sequence[str] = (), search: str = "") -> list[ledger_pb.Customer]:
        reply: ledger_pb.GetCustomersResponse = await self._ask(
            "ledger",
            "ledger",
            "GetCustomers",
            ledger_pb.GetCustomersRequest(customer_ids=ids, search=search),
            "customers",
        )
        return list(reply.customers)

    async def flagged(self, token: str = "") -> tuple[list[ledger_pb.Customer], str]:
        reply: ledger_pb.ListFlaggedCustomersResponse = await self._ask(
            "ledger",
            "ledger",
            "ListFlaggedCustomers",
            ledger_pb.ListFlaggedCustomersRequest(page=page(100, token)),
            "flagged customers",
        )
        return list(reply.customers), reply.page.next_page_token

    async def notes(self, invoice_id: str) -> list[notes_pb2.InvoiceNote]:
        reply: notes_pb2.ListInvoiceNotesResponse = await self._ask(
            "ledger",
            "notes",
            "ListInvoiceNotes",
            notes_pb2.ListInvoiceNotesRequest(invoice_id=invoice_id),
            "the invoice's notes",
        )
        return list(reply.notes)

    async def add_note(
        self, invoice_id: str, kind: notes_pb2.NoteKind.ValueType, text: str, author: str, key: str
    ) -> notes_pb2.InvoiceNote:
        reply: notes_pb2.AddInvoiceNoteResponse = await self._ask(
            "ledger",
            "notes",
            "AddInvoiceNote",
            notes_pb2.AddInvoiceNoteRequest(
                invoice_id=invoice_id,
                author=notes_pb2.NOTE_AUTHOR_STAFF,
                author_name=author,
                kind=kind,
                text=text,
                idempotency_key=key,
            ),
            "a note",
        )
        return reply.note

    async def change_due_date(
        self, invoice_id: str, due_date: str, reason: str, key: str
    ) -> ledger_pb.Invoice:
        reply: terms_pb2.ChangeDueDateResponse = await self._ask(
            "ledger",
            "terms",
            "ChangeDueDate",
            terms_pb2.ChangeDueDateRequest(
                invoice_id=invoice_id, due_date=due_date, reason=reason, idempotency_key=key
            ),
            "the due date",
        )
        return reply.invoice

    # --- renderer -------------------------------------------------------------------------------

    async def documents(self, invoice_id: str) -> list[renderer_pb.DocumentInfo]:
        reply: renderer_pb.ListDocumentsResponse = await self._ask(
            "renderer",
            "renderer",
            "ListDocuments",
            renderer_pb.ListDocumentsRequest(invoice_id=invoice_id),
            "the invoice's documents",
        )
        return list(reply.documents)

    # --- dispatcher -----------------------------------------------------------------------------

    async def deliveries(self, invoice_id: str) -> list[dispatcher_pb.Delivery]:
        reply: dispatcher_pb.ListDeliveriesResponse = await self._ask(
            "dispatcher",
            "dispatcher",
            "ListDeliveries",
            dispatcher_pb.ListDeliveriesRequest(invoice_id=invoice_id),
            "the invoice's deliveries",
        )
        return list(reply.deliveries)

    async def deviations(self, token: str = "") -> tuple[list[dispatcher_pb.Deviation], str]:
        reply: dispatcher_pb.ListDeviationsResponse = await self._ask(
            "dispatcher",
            "dispatcher",
            "ListDeviations",
            dispatcher_pb.ListDeviationsRequest(page=page(100, token)),
            "deviations",
        )
        return list(reply.deviations), reply.page.next_page_token

    async def resend(self, invoice_id: str, channel: str, request_id: str) -> dispatcher_pb.Delivery:
        reply: dispatcher_pb.ResendResponse = await self._ask(
            "dispatcher",
            "dispatcher",
            "Resend",
            dispatcher_pb.ResendRequest(invoice_id=invoice_id, channel=channel, request_id=request_id),
            "a resend",
        )
        return reply.delivery

    async def channel_stats(self) -> list[dispatcher_pb.ChannelStats]:
        reply: dispatcher_pb.GetChannelStatsResponse = await self._ask(
            "dispatcher",
            "dispatcher",
            "GetChannelStats",
            dispatcher_pb.GetChannelStatsRequest(),
            "channel stats",
        )
        return list(reply.channels)

    # --- matcher --------------------------------------------------------------------------------

    async def payment(self, payment_id: str) -> matcher_pb.Payment:
        reply: matcher_pb.GetPaymentResponse = await self._ask(
            "matcher",
            "matcher",
            "GetPayment",
            matcher_pb.GetPaymentRequest(payment_id=payment_id),
            "that payment",
        )
        return reply.payment

    async def review_queue(self, token: str = "") -> tuple[list[matcher_pb.Payment], str]:
        reply: matcher_pb.ListReviewQueueResponse = await self._ask(
            "matcher",
            "matcher",
            "ListReviewQueue",
            matcher_pb.ListReviewQueueRequest(page=page(100, token)),
            "the review queue",
        )
        return list(reply.payments), reply.page.next_page_token

    async def payments(self, limit: int = SCAN_LIMIT) -> list[matcher_pb.Payment]:
        found: list[matcher_pb.Payment] = []
        token = ""
        while len(found) < limit:
            reply: matcher_pb.ListPaymentsResponse = await self._ask(
                "matcher",
                "matcher",
                "ListPayments",
                matcher_pb.ListPaymentsRequest(page=page(500, token)),
                "payments",
            )
            found += reply.payments
            token = reply.page.next_page_token
            if not token:
                break
        return found[:limit]

    async def allocate(
        self, payment_id: str, allocations: Sequence[tuple[str, int]], note: str, customer_number: str = ""
    ) -> matcher_pb.Payment:
        request = matcher_pb.ResolvePaymentRequest(
            payment_id=payment_id,
            allocate=matcher_pb.Allocate(
                allocations=[
                    matcher_pb.AllocationInput(invoice_id=invoice_id, amount_minor=amount)
                    for invoice_id, amount in allocations
                ],
                customer_number=customer_number,
            ),
            note=note,
        )
        reply: matcher_pb.ResolvePaymentResponse = await self._ask(
            "matcher", "matcher", "ResolvePayment", request, "the payment's allocation"
        )
        return reply.payment

    # --- dunning --------------------------------------------------------------------------------

    async def case(self, invoice_id: str) -> dunning_pb.Case:
        reply: dunning_pb.Case = await self._ask(
            "dunning",
            "dunning",
            "GetCase",
            dunning_pb.GetCaseRequest(invoice_id=invoice_id),
            "the dunning case",
        )
        return reply

    async def disputes(self, token: str = "") -> tuple[list[dunning_pb.OpenPause], str]:
        reply: dunning_pb.ListPausesResponse = await self._ask(
            "dunning",
            "dunning",
            "ListPauses",
            dunning_pb.ListPausesRequest(kind="dispute", page=page(100, token)),
            "open disputes",
        )
        return list(reply.pauses), reply.page.next_page_token

    async def held(self, token: str = "") -> tuple[list[dunning_pb.HeldStep], str]:
        reply: dunning_pb.ListHeldResponse = await self._ask(
            "dunning", "dunning", "ListHeld", dunning_pb.ListHeldRequest(page=page(100, token)), "held steps"
        )
        return list(reply.held), reply.page.next_page_token

    async def resume(self, invoice_id: str, reason: str, actor: str) -> int:
        reply: dunning_pb.ResumeResponse = await self._ask(
            "dunning",
            "dunning",
            "Resume",
            dunning_pb.ResumeRequest(invoice_id=invoice_id, reason=reason, actor=actor),
            "resuming the dunning",
        )
        return reply.resumed

    async def payer(self, customer_id: str) -> dunning_pb.PayerHistory:
        reply: dunning_pb.PayerHistory = await self._ask(
            "dunning",
            "dunning",
            "GetPayerHistory",
            dunning_pb.GetPayerHistoryRequest(customer_id=customer_id),
            "the payer's history",
        )
        return reply

    async def collection_export(self, day: str) -> dunning_pb.CollectionExport:
        reply: dunning_pb.CollectionExport = await self._ask(
            "dunning",
            "dunning",
            "GetCollectionExport",
            dunning_pb.GetCollectionExportRequest(day=day),
            "the collection export",
        )
        return reply

    async def policies(self) -> list[dunning_pb.PolicyResponse]:
        reply: dunning_pb.ListPoliciesResponse = await self._ask(
            "dunning", "dunning", "ListPolicies", dunning_pb.ListPoliciesRequest(), "the dunning policies"
        )
        return list(reply.policies)

    async def simulate(self, policy_json: str, *, due_from: str, due_to: str, days: int) -> Any:
        reply: dunning_pb.SimulatePolicyResponse = await self._ask(
            "dunning",
            "dunning",
            "SimulatePolicy",
            dunning_pb.SimulatePolicyRequest(
                policy_json=policy_json, due_from=due_from, due_to=due_to, days=days
            ),
            "the dry run",
        )
        return reply

    async def set_policy(
        self, policy_json: str, expected_version: int, actor: str
    ) -> dunning_pb.PolicyResponse:
        reply: dunning_pb.PolicyResponse = await self._ask(
            "dunning",
            "dunning",
            "SetPolicy",
            dunning_pb.SetPolicyRequest(
                policy_json=policy_json, expected_version=expected_version, actor=actor
            ),
            "the policy",
        )
        return reply
