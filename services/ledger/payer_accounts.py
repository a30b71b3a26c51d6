"""PayerAccountLearned: an operator allocated a payment from an account no customer had, and the matcher
learned whose it is. The account is kept on the customer apart from the ERP's `bank_accounts` (which
an UpsertCustomer replaces), so the ERP cannot erase what was learned, and the next payment from it
matches by itself."""

from __future__ import annotations

import logging

from pymongo import ReturnDocument

from services.common.bus import record_processed
from services.common.events import PayerAccountLearned
from services.common.mongo import Session
from services.ledger.changes import Changes
from services.ledger.customers import customer_upserted
from services.ledger.documents import Ctx
from services.ledger.domain.customer import MAX_LEARNED_ACCOUNTS, learned_account
from services.ledger.metrics import PROPOSALS
from services.ledger.proposals import PROPOSALS_CONSUMER, add_rejection

log = logging.getLogger(__name__)


async def learn_payer_account(changes: Changes, ctx: Ctx, event: PayerAccountLearned) -> None:
    data = event.data
    store = changes.store

    async def work(s: Session) -> str:
        await record_processed(store.db, s, PROPOSALS_CONSUMER, event.id, ctx.now)
        account = learned_account(data.account)
        if account is None:
            # The account itself is not repeated: it may be a person's.
            detail = "the account is neither a Norwegian account number, an IBAN nor an account's digits"
            await add_rejection(changes, s, ctx, event, "", "INVALID_PROPOSAL", detail, None)
            return "rejected:INVALID_PROPOSAL"
        customer = await store.customer(ctx.tenant.id, customer_id=data.customer_id, session=s)
        if customer is None:
            detail = f"no customer {data.customer_id}"
            await add_rejection(changes, s, ctx, event, "", "UNKNOWN_CUSTOMER", detail, None)
            return "rejected:UNKNOWN_CUSTOMER"
        if account in customer.get("learned_bank_accounts", []):
            return "duplicate"
        # The tenant was checked on the customer read: the update is on `_id` alone.
        updated = await store.customers.find_one_and_update(
            {"_id": customer["_id"]},
            {
                "$push": {"learned_bank_accounts": {"$each": [account], "$slice": -MAX_LEARNED_ACCOUNTS}},
                "$inc": {"version": 1},
                "$set": {"updated_at": ctx.now},
            },
            return_document=ReturnDocument.AFTER,
            session=s,
        )
        assert updated is not None  # read in this transaction
        await changes.record(s, events=[customer_upserted(ctx, updated)])
        return "applied"

    outcome = await changes.run(work)
    log.info("payer account from payment %s for customer %s: %s", data.payment_id, data.customer_id, outcome)
    PROPOSALS.add(1, {"type": event.type, "outcome": outcome})
