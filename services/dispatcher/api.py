"""Deliveries over gRPC: `fordring.dispatcher.v1.DispatcherService`."""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import grpc
from fordring.common.v1 import common_pb2 as cpb
from fordring.dispatcher.v1 import dispatcher_pb2 as pb
from fordring.dispatcher.v1 import dispatcher_pb2_grpc
from pydantic import ValidationError

from services.common.clock import Clock, isoformat_utc
from services.common.errors import FailedPrecondition, FieldViolation, InvalidArgument
from services.common.ids import new_id
from services.common.ledger_client import LedgerClient
from services.common.mongo import Doc
from services.common.tenancy import current_tenant
from services.dispatcher.adapters.base import CHANNELS, ChannelName
from services.dispatcher.domain.rules import DeliveryRules
from services.dispatcher.planning import Planner
from services.dispatcher.rules import RulesBook
from services.dispatcher.store import DispatcherStore

Context = grpc.aio.ServicerContext[Any, Any]
MAX_REF = 128
MAX_RULES = 64 * 1024


def _at(value: Any) -> str:
    return isoformat_utc(value) if isinstance(value, datetime) else ""


def delivery_pb(d: Doc) -> pb.Delivery:
    return pb.Delivery(
        id=d["_id"],
        invoice_id=d["invoice_id"],
        invoice_number=d["invoice_number"],
        document_kind=d["kind"],
        rendering_id=d["rendering_id"],
        channel=d["channel"],
        route=d["route"],
        rule=d.get("rule", ""),
        status=d["status"],
        provider_ref=d.get("provider_ref", ""),
        code=d.get("code", ""),
        reason=d.get("reason", ""),
        created_at=_at(d.get("created_at")),
        sent_at=_at(d.get("sent_at")),
        delivered_at=_at(d.get("delivered_at")),
        opened_at=_at(d.get("opened_at")),
        failed_at=_at(d.get("failed_at")),
        next_attempt_at=_at(d.get("next_attempt_at")) if d["status"] == "queued" and d.get("attempt") else "",
        passed=d.get("passed", {}),
        attempts=[
            pb.Attempt(
                number=a["number"],
                at=_at(a["at"]),
                result=a["result"],
                code=a.get("code", ""),
                detail=a.get("detail", ""),
            )
            for a in d.get("attempts", [])
        ],
    )


def deviation_pb(d: Doc) -> pb.Deviation:
    return pb.Deviation(
        id=d["_id"],
        invoice_id=d["invoice_id"],
        invoice_number=d["invoice_number"],
        delivery_id=d.get("delivery_id", ""),
        channel=d.get("channel", ""),
        kind=d["kind"],
        reason=d.get("reason", ""),
        action=d.get("action", ""),
        created_at=_at(d.get("created_at")),
        document_kind=d.get("document_kind", ""),
    )


def _ref(invoice_id: str, invoice_number: str) -> None:
    value = invoice_id or invoice_number
    if not value.strip():
        raise InvalidArgument([FieldViolation("invoice_ref", "give invoice_id or invoice_number")])
    if len(value) > MAX_REF:
        raise InvalidArgument([FieldViolation("invoice_ref", f"at most {MAX_REF} characters")])


def _date(value: str, field: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidArgument([FieldViolation(field, "an ISO date, e.g. 2026-12-01")]) from None


def channel_stats(deliveries: list[Doc], invoices: dict[str, Doc], today: date) -> list[pb.ChannelStats]:
    """Per channel, over invoice deliveries: delivered, opened, failed, and for the invoices they
    carried: paid on or before the due date, and the days from delivery to payment."""
    by_channel: dict[str, list[Doc]] = defaultdict(list)
    for d in deliveries:
        by_channel[d["channel"]].append(d)
    stats = []
    for channel in sorted(by_channel):
        items = by_channel[channel]
        delivered = [d for d in items if d.get("delivered_at") or d["status"] in ("delivered", "opened")]
        opened = [d for d in items if d.get("opened_at")]
        failed = [d for d in items if d["status"] == "failed"]
        judged = on_time = 0
        days: list[float] = []
        for d in delivered:
            if d["kind"] != "invoice":
                continue
            state = invoices.get(d["invoice_id"])
            if state is None or not state.get("due_date"):
                continue
            due = date.fromisoformat(state["due_date"])
            paid_at = state.get("paid_at")
            if paid_at is not None:
                judged += 1
                on_time += paid_at.date() <= due
                since = d.get("delivered_at") or d.get("sent_at")
                if since is not None:
                    days.append(max(0.0, (paid_at - since).total_seconds() / 86400))
            elif due < today:
                judged += 1
        n = len(items)
        stats.append(
            pb.ChannelStats(
                channel=channel,
                deliveries=n,
                delivered=len(delivered),
                opened=len(opened),
                failed=len(failed),
                paid=len(days),
                share_delivered=len(delivered) / n if n else 0.0,
                share_opened=len(opened) / len(delivered) if delivered else 0.0,
                share_paid_before_due=on_time / judged if judged else 0.0,
                days_to_payment=sum(days) / len(days) if days else 0.0,
            )
        )
    return stats


class DispatcherApi(dispatcher_pb2_grpc.DispatcherServiceServicer):
    def __init__(
        self, store: DispatcherStore, ledger: LedgerClient, planner: Planner, rules: RulesBook, clock: Clock
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._planner = planner
        self._rules = rules
        self._clock = clock

    async def _invoice_id(self, tenant_id: str, invoice_id: str, invoice_number: str) -> str:
        _ref(invoice_id, invoice_number)
        if invoice_id:
            return invoice_id
        return (await self._ledger.invoice_by_number(tenant_id, invoice_number)).id

    async def ListDeliveries(
        self, request: pb.ListDeliveriesRequest, context: Context
    ) -> pb.ListDeliveriesResponse:
        tenant = current_tenant()
        invoice_id = await self._invoice_id(tenant.id, request.invoice_id, request.invoice_number)
        found = await self._store.of_invoice(tenant.id, invoice_id)
        return pb.ListDeliveriesResponse(deliveries=[delivery_pb(d) for d in found])

    async def ListDeviations(
        self, request: pb.ListDeviationsRequest, context: Context
    ) -> pb.ListDeviationsResponse:
        tenant = current_tenant()
        size = request.page.page_size or 50
        if not 1 <= size <= 500:
            raise InvalidArgument([FieldViolation("page.page_size", "1..500")])
        before = ""
        if request.page.page_token:
            try:
                before = base64.urlsafe_b64decode(request.page.page_token.encode()).decode()
            except ValueError:
                raise InvalidArgument(
                    [FieldViolation("page.page_token", "not a token from this call")]
                ) from None
        found = await self._store.deviations(tenant.id, size + 1, before)
        token = (
            base64.urlsafe_b64encode(found[size - 1]["_id"].encode()).decode() if len(found) > size else ""
        )
        return pb.ListDeviationsResponse(
            deviations=[deviation_pb(d) for d in found[:size]], page=cpb.PageResponse(next_page_token=token)
        )

    async def Resend(self, request: pb.ResendRequest, context: Context) -> pb.ResendResponse:
        tenant = current_tenant()
        if request.channel not in CHANNELS:
            raise InvalidArgument([FieldViolation("channel", f"one of {', '.join(CHANNELS)}")])
        if len(request.request_id) > MAX_REF:
            raise InvalidArgument([FieldViolation("request_id", f"at most {MAX_REF} characters")])
        invoice_id = await self._invoice_id(tenant.id, request.invoice_id, request.invoice_number)
        channel: ChannelName = request.channel
        try:
            delivery = await self._planner.resend(
                tenant.id, invoice_id, channel, request.request_id or new_id()
            )
        except ValueError as exc:
            raise FailedPrecondition(str(exc), reason="CHANNEL_NOT_USABLE") from None
        return pb.ResendResponse(delivery=delivery_pb(delivery))

    async def GetChannelStats(
        self, request: pb.GetChannelStatsRequest, context: Context
    ) -> pb.GetChannelStatsResponse:
        tenant = current_tenant()
        today = self._clock.now().date()
        start = _date(request.from_date, "from_date") or today - timedelta(days=90)
        end = _date(request.to_date, "to_date") or today
        if end < start:
            raise InvalidArgument([FieldViolation("to_date", "not before from_date")])
        deliveries = await self._store.in_window(
            tenant.id,
            datetime.combine(start, time(0), UTC),
            datetime.combine(end + timedelta(days=1), time(0), UTC),
        )
        invoices = await self._store.invoice_states(list({d["invoice_id"] for d in deliveries}))
        return pb.GetChannelStatsResponse(channels=channel_stats(deliveries, invoices, today))

    async def GetRules(self, request: pb.GetRulesRequest, context: Context) -> pb.RulesResponse:
        tenant = current_tenant()
        own = await self._rules.own(tenant.id)
        rules = own or await self._rules.get(tenant.id)
        return pb.RulesResponse(rules_json=rules.model_dump_json(indent=2), defaults=own is None)

    async def SetRules(self, request: pb.SetRulesRequest, context: Context) -> pb.RulesResponse:
        tenant = current_tenant()
        if len(request.rules_json) > MAX_RULES:
            raise InvalidArgument([FieldViolation("rules_json", f"at most {MAX_RULES} bytes")])
        try:
            rules = DeliveryRules.model_validate(json.loads(request.rules_json or "{}"))
        except json.JSONDecodeError as exc:
            raise InvalidArgument([FieldViolation("rules_json", f"not JSON: {exc}")]) from None
        except ValidationError as exc:
            violations = [
                FieldViolation("rules_json." + ".".join(str(p) for p in err["loc"]), err["msg"])
                for err in exc.errors()
            ]
            raise InvalidArgument(violations) from None
        await self._rules.set(tenant.id, rules)
        return pb.RulesResponse(rules_json=rules.model_dump_json(indent=2), defaults=False)
