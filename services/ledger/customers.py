"""UpsertCustomer, and how a customer is stored and announced (also when an invoice embeds it)."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from services.common.errors import Violations
from services.common.events import CustomerUpserted, CustomerUpsertedData, Event
from services.common.mongo import Doc, Session
from services.ledger.changes import Changes, customer_event
from services.ledger.documents import Ctx, customer_fields
from services.ledger.domain.customer import CustomerData, validate_customer
from services.ledger.store import customer_id_for

# Which fields hold each contact the dispatcher can flag: a new value clears the flag.
FLAGGED_BY: Final = {
    "email": ("email",),
    "phone": ("phone",),
    "address": ("address", "name"),
    "ehf": ("org_number",),
    "efaktura": ("phone", "email", "name", "consents"),
}


def updated_customer(
    current: Doc | None, fields: Doc, *, customer_id: str, tenant_id: str, now: datetime
) -> Doc | None:
    """The customer with the ERP's fields, as its next version; None when nothing changes. A flag on
    a contact whose value the ERP changed is cleared (it was cleaned)."""
    if current is not None and all(current.get(k) == v for k, v in fields.items()):
        return None
    base = current or {"_id": customer_id, "tenant_id": tenant_id, "created_at": now, "credit_balances": {}}
    changed = {k for k, v in fields.items() if base.get(k) != v}
    flags = [f for f in base.get("flags", []) if not changed & set(FLAGGED_BY.get(f["contact"], ()))]
    return {
        **base,
        **fields,
        "flags": flags,
        "flagged": bool(flags),
        "version": base.get("version", 0) + 1,
        "updated_at": now,
    }


def customer_upserted(ctx: Ctx, customer: Doc) -> tuple[Event, str]:
    data = CustomerUpsertedData(
        customer_id=customer["_id"],
        customer_number=customer["number"],
        kind=customer["kind"],
        language=customer["language"],
        channel_preferences=customer["channel_preferences"],
        email_consent=customer["consents"]["email"],
        sms_consent=customer["consents"]["sms"],
        efaktura_consent=customer["consents"].get("efaktura", False),
        avtalegiro_consent=customer["consents"].get("avtalegiro", False),
        version=customer["version"],
    )
    return customer_event(ctx, customer["_id"], CustomerUpserted, data)


async def upsert_customer(changes: Changes, ctx: Ctx, data: CustomerData) -> tuple[Doc, bool]:
    """Create or update a customer; returns it and whether it was created now."""
    v = Violations()
    customer = validate_customer(data, v)
    v.raise_if_any()
    cid = customer_id_for(ctx.tenant.id, customer.number)
    fields = customer_fields(customer)

    async def work(s: Session) -> tuple[Doc, bool]:
        found = await changes.store.customers.find_one({"_id": cid}, session=s)
        doc = updated_customer(found, fields, customer_id=cid, tenant_id=ctx.tenant.id, now=ctx.now)
        if doc is None:
            assert found is not None
            return found, False
        await changes.store.customers.replace_one({"_id": cid}, doc, upsert=True, session=s)
        await changes.record(s, events=[customer_upserted(ctx, doc)])
        return doc, found is None

    return await changes.run(work)
