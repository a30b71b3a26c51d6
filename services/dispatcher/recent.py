"""What the dispatcher read from the ledger a moment ago: a delivery is planned and sent within
seconds, and both need the customer and the invoice; reading them once spares the ledger (and its
database) half the reads. Entries live `seconds` (a contact changed meanwhile is seen at the next
read); checks that must be current (is the invoice paid before a fallback?) read the ledger itself.

A contact the dispatcher just found bad (a bounce) is flagged by the ledger moments later, when it
has applied the ContactFlagged event: until then, this replica applies the flag itself, so the next
invoice to that customer does not go to the same dead address (unless the contact changed since).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from datetime import datetime

from fordring.ledger.v1 import ledger_pb2 as lpb

from services.common.cache import ExpiringLru
from services.common.errors import Unavailable
from services.common.ledger_client import LedgerClient


class RecentLedger:
    def __init__(self, ledger: LedgerClient, *, seconds: float = 30.0, size: int = 50_000) -> None:
        self.ledger = ledger
        self._seconds = seconds
        self._customers: ExpiringLru[lpb.Customer] = ExpiringLru(size)
        self._invoices: ExpiringLru[lpb.Invoice] = ExpiringLru(size)
        self._flags: ExpiringLru[list[tuple[str, datetime, str]]] = ExpiringLru(size)

    def flagged(self, tenant_id: str, customer_id: str, contact: str, at: datetime, reason: str) -> None:
        key = f"{tenant_id}:{customer_id}"
        self._customers.pop(key)
        _, flags = self._flags.get(key)
        self._flags.put(key, [*(flags or []), (contact, at, reason)], 600.0)

    def _with_flags(self, key: str, customer: lpb.Customer) -> lpb.Customer:
        _, flags = self._flags.get(key)
        known = {f.contact for f in customer.flags}
        changed = datetime.fromisoformat(customer.updated_at) if customer.updated_at else None
        missing = [
            (contact, at, reason)
            for contact, at, reason in flags or []
            if contact not in known and (changed is None or changed <= at)
        ]
        if not missing:
            return customer
        flagged = lpb.Customer()
        flagged.CopyFrom(customer)
        for contact, at, reason in missing:
            flagged.flags.append(lpb.ContactFlag(contact=contact, reason=reason, flagged_at=at.isoformat()))
        return flagged

    async def warm(self, wanted: Iterable[tuple[str, str, str]]) -> None:
        """Read the (tenant, customer id, invoice id) not read lately, a call per tenant and kind for
        the lot instead of two calls each. What fails here is read one by one later."""
        customers: dict[str, set[str]] = {}
        invoices: dict[str, set[str]] = {}
        for tenant_id, customer_id, invoice_id in wanted:
            if not self._customers.get(f"{tenant_id}:{customer_id}")[0]:
                customers.setdefault(tenant_id, set()).add(customer_id)
            if not self._invoices.get(f"{tenant_id}:{invoice_id}")[0]:
                invoices.setdefault(tenant_id, set()).add(invoice_id)
        for tenant_id, ids in customers.items():
            for part in _parts(sorted(ids)):
                with contextlib.suppress(Unavailable):
                    for found_id, customer in (await self.ledger.customers(tenant_id, part)).items():
                        self._customers.put(f"{tenant_id}:{found_id}", customer, self._seconds)
        for tenant_id, ids in invoices.items():
            for part in _parts(sorted(ids)):
                with contextlib.suppress(Unavailable):
                    for found_id, invoice in (await self.ledger.invoices(tenant_id, part)).items():
                        self._invoices.put(f"{tenant_id}:{found_id}", invoice, self._seconds)

    async def customer(self, tenant_id: str, customer_id: str) -> lpb.Customer:
        key = f"{tenant_id}:{customer_id}"
        found, customer = self._customers.get(key)
        if not found or customer is None:
            customer = await self.ledger.customer(tenant_id, customer_id)
            self._customers.put(key, customer, self._seconds)
        return self._with_flags(key, customer)

    async def invoice(self, tenant_id: str, invoice_id: str) -> lpb.Invoice:
        key = f"{tenant_id}:{invoice_id}"
        found, invoice = self._invoices.get(key)
        if found and invoice is not None:
            return invoice
        invoice = await self.ledger.invoice(tenant_id, invoice_id)
        self._invoices.put(key, invoice, self._seconds)
        return invoice


def _parts(ids: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]
