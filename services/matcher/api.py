"""Payments over gRPC: `fordring.matcher.v1.MatcherService`."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Final

import grpc
from fordring.common.v1 import common_pb2 as cpb
from fordring.matcher.v1 import matcher_pb2 as pb
from fordring.matcher.v1 import matcher_pb2_grpc

from services.common.clock import isoformat_utc
from services.common.errors import FieldViolation, InvalidArgument, NotFound, OutOfRange
from services.common.mongo import Doc
from services.common.tenancy import current_tenant
from services.matcher.importing import Importer
from services.matcher.review import AllocationInput, Resolution, Resolver
from services.matcher.store import MatcherStore, import_prefix

Context = grpc.aio.ServicerContext[Any, Any]
MAX_FILTER: Final = 64
STATUSES: Final = frozenset(
    {"matched", "review", "resolved", "refunded", "reversal", "reversed", "returned", "rejected"}
)


def _at(value: Any) -> str:
    return isoformat_utc(value) if isinstance(value, datetime) else ""


def import_pb(d: Doc) -> pb.Import:
    currency = d.get("currency", "")
    return pb.Import(
        id=d["_id"],
        filename=d.get("filename", ""),
        format=d["format"],
        version=d.get("version", ""),
        file_id=d.get("file_id", ""),
        sha256=d["sha256"],
        state=d["state"] if d["state"] == "done" else "running",
        payments=d.get("payments", 0),
        total=cpb.Money(minor_units=d.get("total_minor", 0), currency=currency),
        matched=d.get("matched", 0),
        review=d.get("review", 0),
        reversals=d.get("reversals", 0),
        duplicates=d.get("duplicates", 0),
        by_method=d.get("by_method", {}),
        created_at=_at(d.get("created_at")),
        finished_at=_at(d.get("finished_at")),
        creditor_account=d.get("creditor_account", ""),
        warnings=d.get("warnings", []),
    )


def payment_pb(d: Doc) -> pb.Payment:
    return pb.Payment(
        id=d["_id"],
        import_id=d["import_id"],
        location=d.get("location", ""),
        direction=d["direction"],
        amount=cpb.Money(minor_units=d["amount_minor"], currency=d["currency"]),
        reference=d.get("reference", ""),
        free_text=d.get("free_text", ""),
        payer_name=d.get("payer_name", ""),
        payer_account=d.get("payer_account", ""),
        booking_date=d.get("booking_date", ""),
        value_date=d.get("value_date", ""),
        bank_ids=d.get("bank_ids", {}),
        return_reason=d.get("return_reason", ""),
        status=d["status"],
        method=d.get("method", ""),
        confidence=d.get("confidence", 0.0),
        evidence=d.get("evidence", []),
        allocations=[
            pb.PaymentAllocation(
                invoice_id=a["invoice_id"],
                invoice_number=a.get("invoice_number", ""),
                amount_minor=a["amount_minor"],
            )
            for a in d.get("allocations", [])
        ],
        credit_minor=d.get("credit_minor", 0),
        customer_id=d.get("customer_id", ""),
        customer_number=d.get("customer_number", ""),
        suggestions=[
            pb.Suggestion(
                invoice_ids=s["invoice_ids"],
                invoice_numbers=s["invoice_numbers"],
                score=s["score"],
                reason=s["reason"],
            )
            for s in d.get("suggestions", [])
        ],
        reason=d.get("reason", ""),
        ledger_state=d.get("ledger_state", ""),
        decided_at=_at(d.get("decided_at")),
        resolved_by=d.get("resolved_by", ""),
        note=d.get("note", ""),
        reverses_payment_id=d.get("reverses_payment_id", ""),
    )


def _page(page: cpb.PageRequest) -> tuple[int, str]:
    size = page.page_size or 50
    if not 1 <= size <= 500:
        raise InvalidArgument([FieldViolation("page.page_size", "1..500")])
    after = ""
    if page.page_token:
        try:
            after = base64.urlsafe_b64decode(page.page_token.encode()).decode()
        except ValueError:
            raise InvalidArgument([FieldViolation("page.page_token", "not a token from this call")]) from None
    return size, after


def _token(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode()


def _filter(value: str, field: str) -> None:
    if len(value) > MAX_FILTER:
        raise InvalidArgument([FieldViolation(field, f"at most {MAX_FILTER} characters")])


class MatcherApi(matcher_pb2_grpc.MatcherServiceServicer):
    def __init__(
        self, store: MatcherStore, importer: Importer, resolver: Resolver, max_file_bytes: int
    ) -> None:
        self._store = store
        self._importer = importer
        self._resolver = resolver
        self._max_bytes = max_file_bytes

    async def ImportPayments(
        self, request_iterator: AsyncIterator[pb.ImportPaymentsRequest], context: Context
    ) -> pb.ImportPaymentsResponse:
        tenant = current_tenant()
        header: pb.ImportHeader | None = None
        parts: list[bytes] = []
        size = 0
        async for part in request_iterator:
            if part.HasField("header"):
                if header is not None or parts:
                    raise InvalidArgument([FieldViolation("header", "send the header once, first")])
                header = part.header
            elif part.HasField("chunk"):
                size += len(part.chunk)
                if size > self._max_bytes:
                    raise OutOfRange(
                        f"the file is larger than {self._max_bytes} bytes, the most one import takes"
                    )
                parts.append(part.chunk)
        if header is None:
            raise InvalidArgument(
                [FieldViolation("header", "required: the file's name and (optionally) format")]
            )
        imported = await self._importer.import_file(
            tenant.id, b"".join(parts), filename=header.filename, format=header.format
        )
        return pb.ImportPaymentsResponse(
            summary=import_pb(imported.doc), already_imported=imported.already_imported
        )

    async def ListImports(self, request: pb.ListImportsRequest, context: Context) -> pb.ListImportsResponse:
        tenant = current_tenant()
        size, after = _page(request.page)
        query: Doc = {"tenant_id": tenant.id, "state": {"$ne": "receiving"}}
        if after:
            query["created_at"] = {"$lt": datetime.fromisoformat(after)}
        found = await self._store.imports.find(query).sort("created_at", -1).limit(size + 1).to_list()
        token = _token(found[size - 1]["created_at"].isoformat()) if len(found) > size else ""
        return pb.ListImportsResponse(
            imports=[import_pb(d) for d in found[:size]], page=cpb.PageResponse(next_page_token=token)
        )

    async def ListPayments(
        self, request: pb.ListPaymentsRequest, context: Context
    ) -> pb.ListPaymentsResponse:
        tenant = current_tenant()
        size, after = _page(request.page)
        for value, field in (
            (request.status, "status"),
            (request.import_id, "import_id"),
            (request.method, "method"),
        ):
            _filter(value, field)
        if request.status and request.status not in STATUSES:
            raise InvalidArgument([FieldViolation("status", f"one of {', '.join(sorted(STATUSES))}")])
        query: Doc = {"tenant_id": tenant.id}
        if request.status:
            query["status"] = request.status
        if request.import_id:
            found_import = await self._store.imports.find_one({"_id": request.import_id})
            if found_import is None or found_import["tenant_id"] != tenant.id:
                raise NotFound(f"no import {request.import_id}")
            # An import's payments are one range of the list order.
            prefix = import_prefix(found_import["created_at"])
            query["import_id"] = request.import_id
            query["sort_key"] = {"$gte": prefix, "$lt": prefix + "~"}
        if request.method:
            query["method"] = request.method
        if after:
            query.setdefault("sort_key", {})["$gt"] = after
        found = await self._store.payments.find(query).sort("sort_key", 1).limit(size + 1).to_list()
        token = _token(found[size - 1]["sort_key"]) if len(found) > size else ""
        return pb.ListPaymentsResponse(
            payments=[payment_pb(d) for d in found[:size]], page=cpb.PageResponse(next_page_token=token)
        )

    async def GetPayment(self, request: pb.GetPaymentRequest, context: Context) -> pb.GetPaymentResponse:
        tenant = current_tenant()
        _filter(request.payment_id, "payment_id")
        found = await self._store.payment(tenant.id, request.payment_id)
        if found is None:
            raise NotFound(f"no payment {request.payment_id}")
        return pb.GetPaymentResponse(payment=payment_pb(found))

    async def ListReviewQueue(
        self, request: pb.ListReviewQueueRequest, context: Context
    ) -> pb.ListReviewQueueResponse:
        """Oldest first: the queue is worked from its head."""
        tenant = current_tenant()
        size, after = _page(request.page)
        query: Doc = {"tenant_id": tenant.id, "in_review": {"$exists": True}}
        if after:
            query["in_review"]["$gt"] = after
        found = await self._store.payments.find(query).sort("in_review", 1).limit(size + 1).to_list()
        token = _token(found[size - 1]["in_review"]) if len(found) > size else ""
        return pb.ListReviewQueueResponse(
            payments=[payment_pb(d) for d in found[:size]], page=cpb.PageResponse(next_page_token=token)
        )

    async def ResolvePayment(
        self, request: pb.ResolvePaymentRequest, context: Context
    ) -> pb.ResolvePaymentResponse:
        tenant = current_tenant()
        _filter(request.payment_id, "payment_id")
        action = request.WhichOneof("action")
        if action is None:
            raise InvalidArgument([FieldViolation("action", "allocate or refund")])
        allocate = request.allocate
        # Too long to be an id or number is refused, never cut to one that might exist.
        _filter(allocate.customer_number, "allocate.customer_number")
        for i, a in enumerate(allocate.allocations):
            _filter(a.invoice_id or a.invoice_number, f"allocate.allocations[{i}]")
        resolution = Resolution(
            payment_id=request.payment_id,
            refund=action == "refund",
            allocations=tuple(
                AllocationInput(a.invoice_id, a.invoice_number, a.amount_minor) for a in allocate.allocations
            ),
            customer_number=allocate.customer_number,
            learn_account=not allocate.do_not_learn_account,
            note=request.note,
            actor=tenant.key_name,
        )
        done = await self._resolver.resolve(tenant.id, resolution)
        return pb.ResolvePaymentResponse(payment=payment_pb(done))
