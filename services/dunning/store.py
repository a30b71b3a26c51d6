"""The dunning service's database (its own; nobody else reads it).

- `cases`: one per invoice, the dunning view of it: the ledger's state (status, version, amounts,
  stage) from the invoice events, the payments and credit notes that reduced it (dated, for interest),
  the steps proposed and what the ledger made of them, what holds it (payments not yet applied,
  pauses: kept on the case itself, so deciding a batch reads one collection) and the last decision.
- `payments`: payments the matcher announced and the ledger has not applied, with the invoices each
  may pay (to lift their holds when the payment is decided or applied).
- `pauses`: every pause and dispute, open and ended (who, why, when).
- `policies`: the tenants' policies (the lawful default until one is saved), versioned.
- `bank_days`: per tenant, the last day a bank file came in (the bank-files hold).
- `exports`: claims handed to collection, by tenant and day (the agency's daily file).
- `timers`: one per open case, due when its next step may be (services/common/timers.py).
- `outbox`, `processed_events`, `leases`: the shared machinery.
"""

from __future__ import annotations

from typing import Final

from pymongo import ASCENDING

from services.common.bus import ensure_processed_indexes
from services.common.mongo import Client, Database
from services.common.outbox import ensure_outbox_indexes

CASES: Final = "cases"
PAYMENTS: Final = "payments"
PAUSES: Final = "pauses"
POLICIES: Final = "policies"
BANK_DAYS: Final = "bank_days"
EXPORTS: Final = "exports"
STEP_TIMER: Final = "dunning-step"


def timer_id(invoice_id: str) -> str:
    return f"case:{invoice_id}"


def policy_id(tenant_id: str, jurisdiction: str, debtor_kind: str) -> str:
    return f"{tenant_id}:{jurisdiction}:{debtor_kind}"


class DunningStore:
    def __init__(self, client: Client, database: str) -> None:
        self.client = client
        self.db: Database = client[database]
        self.cases = self.db[CASES]
        self.payments = self.db[PAYMENTS]
        self.pauses = self.db[PAUSES]
        self.policies = self.db[POLICIES]
        self.bank_days = self.db[BANK_DAYS]
        self.exports = self.db[EXPORTS]

    async def ensure_indexes(self) -> None:
        await ensure_outbox_indexes(self.db)
        await ensure_processed_indexes(self.db)
        # ListHeld: a tenant's held steps, oldest first (partial: only held cases are in it).
        await self.cases.create_index(
            [("tenant_id", ASCENDING), ("held.since", ASCENDING)],
            name="held",
            partialFilterExpression={"held": {"$exists": True}},
        )
        # Payer history and SetPolicy's re-decision.
        await self.cases.create_index([("tenant_id", ASCENDING), ("customer_id", ASCENDING)], name="customer")
        await self.cases.create_index([("tenant_id", ASCENDING), ("due_date", ASCENDING)], name="due")
        await self.pauses.create_index([("invoice_id", ASCENDING)], name="invoice")
        await self.pauses.create_index(
            [("tenant_id", ASCENDING), ("open", ASCENDING), ("opened_at", ASCENDING), ("_id", ASCENDING)],
            name="open",
        )
        await self.exports.create_index([("tenant_id", ASCENDING), ("day", ASCENDING)], name="day")
