"""A customer's own request for a channel: the consent (or agreement) it takes, and the channel
first among the customer's preferences. Only those two fields change; the ERP stays the master of
the rest (UpsertCustomer)."""

from __future__ import annotations

from typing import Any, Final

import grpc
from fordring.ledger.v1 import consents_pb2 as cpb
from fordring.ledger.v1 import consents_pb2_grpc
from fordring.ledger.v1 import ledger_pb2 as pb

from services.common.clock import Clock
from services.common.errors import FieldViolation, InvalidArgument, NotFound
from services.common.mongo import Doc, Session
from services.common.tenancy import current_tenant
from services.ledger.changes import Changes
from services.ledger.convert import customer_to_pb
from services.ledger.customers import customer_upserted
from services.ledger.documents import request_ctx
from services.ledger.store import ConcurrentChange

SERVICE_NAME: Final = cpb.DESCRIPTOR.services_by_name["CustomerConsentService"].full_name
CONSENTED: Final = {
    pb.CHANNEL_EMAIL: "email",
    pb.CHANNEL_SMS: "sms",
    pb.CHANNEL_EFAKTURA: "efaktura",
    pb.CHANNEL_AVTALEGIRO: "avtalegiro",
}


def with_consent(customer: Doc, channel: str, *, now: Any, source: str) -> Doc | None:
    """The customer's next version with the consent given and the channel preferred first; None
    when both were so already."""
    preferences = [c for c in customer.get("channel_preferences", []) if c != channel]
    consents = {**customer.get("consents", {}), channel: True}
    if customer.get("consents", {}).get(channel) and customer.get("channel_preferences", [])[:1] == [channel]:
        return None
    given = {**customer.get("consents_given", {}), channel: {"at": now, "source": source}}
    return {
        **customer,
        "consents": consents,
        "channel_preferences": [channel, *preferences],
        "consents_given": given,
        "version": customer.get("version", 0) + 1,
        "updated_at": now,
    }


class CustomerConsentApi(consents_pb2_grpc.CustomerConsentServiceServicer):
    def __init__(self, changes: Changes, clock: Clock) -> None:
        self._changes = changes
        self._clock = clock

    async def RecordConsent(  # noqa: N802 - gRPC method name
        self, request: cpb.RecordConsentRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> cpb.RecordConsentResponse:
        tenant = current_tenant()
        problems = []
        if not request.customer_id:
            problems.append(FieldViolation("customer_id", "required"))
        if request.channel not in CONSENTED:
            problems.append(
                FieldViolation(
                    "channel", "CHANNEL_EMAIL, CHANNEL_SMS, CHANNEL_EFAKTURA or CHANNEL_AVTALEGIRO"
                )
            )
        if len(request.source) > 200:
            problems.append(FieldViolation("source", "at most 200 characters"))
        if problems:
            raise InvalidArgument(problems)
        channel = CONSENTED[request.channel]
        ctx = request_ctx(self._clock)
        now = ctx.now
        customers = self._changes.store.customers

        async def work(s: Session) -> tuple[Doc, bool]:
            found = await customers.find_one({"_id": request.customer_id, "tenant_id": tenant.id}, session=s)
            if found is None:
                raise NotFound(f"no customer {request.customer_id}")
            changed = with_consent(found, channel, now=now, source=request.source or "customer")
            if changed is None:
                return found, False
            result = await customers.replace_one(
                {"_id": found["_id"], "version": found["version"]}, changed, session=s
            )
            if result.matched_count != 1:
                raise ConcurrentChange(found["_id"])  # changed meanwhile: read again (Changes.run)
            await self._changes.record(s, events=[customer_upserted(ctx, changed)])
            return changed, True

        doc, changed = await self._changes.run(work)
        return cpb.RecordConsentResponse(
            customer=customer_to_pb(doc, tenant.default_currency), changed=changed
        )
