"""Every query the ledger makes on a hot path is served by an index (explain's winning plan), so its
cost follows what it returns, not how much is stored. The shapes are the ones the code sends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from services.common.ids import id_floor
from services.ledger.app import LedgerApp

pytestmark = pytest.mark.integration

T = "tenant-x"
WINDOW = {"$gt": 0, "$lte": 64}
NOV = datetime(2026, 11, 1, tzinfo=UTC)

# (what the ledger asks, collection, filter, sort, the index that must serve it, whether the whole
# filter must be in the index bounds: no post-filter on fetched documents). A lookup by `_id` alone
# is a point lookup on every server; the tenant is checked on the document found.
QUERIES: list[tuple[str, str, dict[str, Any], dict[str, int] | None, str, bool]] = [
    ("GetInvoice by number", "invoices", {"tenant_id": T, "invoice_number": "1042"}, None,
     "tenant_id_1_invoice_number_1", True),
    ("GetInvoice by KID", "invoices", {"tenant_id": T, "kid": "0000010420"}, None, "kid_lookup", True),
    ("GetInvoice by ERP id; IssueInvoice retries", "invoices",
     {"tenant_id": T, "kind": "invoice", "external_id": "ERP-1"}, None,
     "tenant_id_1_kind_1_external_id_1", True),
    ("IssueInvoice retries (a batch)", "invoices",
     {"tenant_id": T, "kind": "invoice", "external_id": {"$in": ["ERP-1", "ERP-2"]}}, None,
     "tenant_id_1_kind_1_external_id_1", True),
    ("numbers the counter must skip", "invoices", {"tenant_id": T, "invoice_number": {"$in": ["7", "8"]}},
     None, "tenant_id_1_invoice_number_1", True),
    ("KIDs the counter must skip", "invoices", {"tenant_id": T, "kid": {"$in": ["0000000075", "00000083"]}},
     None, "kid_lookup", True),
    ("ListInvoices, a window", "invoices", {"tenant_id": T, "seq": {"$gt": 100, "$lte": 151}}, {"seq": 1},
     "tenant_id_1_seq_1", True),
    ("ListInvoices by status", "invoices", {"tenant_id": T, "status": "open", "seq": WINDOW},
     {"seq": 1}, "tenant_id_1_status_1_seq_1", True),
    ("ListInvoices by customer; statement", "invoices",
     {"tenant_id": T, "customer_id": "c1", "seq": WINDOW}, {"seq": 1},
     "tenant_id_1_customer_id_1_seq_1", True),
    ("ListInvoices by kind", "invoices", {"tenant_id": T, "kind": "credit_note", "seq": WINDOW},
     {"seq": 1}, "tenant_id_1_kind_1_seq_1", True),
    ("statement totals", "invoices", {"tenant_id": T, "customer_id": "c1"}, None,
     "tenant_id_1_customer_id_1_seq_1", True),
    ("overdue sweep", "invoices", {"tenant_id": T, "status": "open", "due_date": {"$lt": "2026-12-01"}},
     None, "tenant_id_1_status_1_due_date_1__id_1", True),
    ("customers of a batch, by number", "customers", {"tenant_id": T, "number": {"$in": ["K-1", "K-2"]}},
     None, "tenant_id_1_number_1", True),
    ("a customer by number", "customers", {"tenant_id": T, "number": "K-1"}, None,
     "tenant_id_1_number_1", True),
    ("payment retries", "payments", {"tenant_id": T, "idempotency_key": "BANK-1"}, None,
     "tenant_id_1_idempotency_key_1", True),
    ("the matcher's payments applied before (a batch)", "payments",
     {"tenant_id": T, "idempotency_key": {"$in": ["matcher:p1", "matcher:p2"]}}, None,
     "tenant_id_1_idempotency_key_1", True),
    ("API key to tenant", "tenants", {"api_keys.hash": "ab" * 32}, None, "api_keys.hash_1", True),
    ("the relay's next batch", "outbox", {"sent": False}, {"_id": 1}, "unsent", True),
    ("the relay's parked keys", "outbox", {"parked": True}, None, "parked", True),
    ("the backlog gauge", "outbox", {"sent": False}, None, "unsent", True),
    ("outbox retention", "outbox", {"sent_at": {"$lt": NOV}}, None, "sent_at", True),
    ("outbox replay of a window", "outbox",
     {"sent": True, "_id": {"$gte": id_floor(datetime(2026, 11, 30, tzinfo=UTC))}}, None, "unsent", True),
    ("applied event ids, retention", "processed_events", {"at": {"$lt": NOV}},
     None, "at", True),
]  # fmt: skip


def stages(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for key in ("inputStage", "queryPlan"):
        if isinstance(plan.get(key), dict):
            yield from stages(plan[key])
    for child in plan.get("inputStages", []):
        yield from stages(child)


@pytest.mark.parametrize(
    ("what", "collection", "query", "sort", "index", "bounded"), QUERIES, ids=[q[0] for q in QUERIES]
)
async def test_the_query_is_served_by_its_index(
    ledger_app: LedgerApp,
    what: str,
    collection: str,
    query: dict[str, Any],
    sort: dict[str, int] | None,
    index: str,
    bounded: bool,
) -> None:
    command: dict[str, Any] = {"find": collection, "filter": query}
    if sort:
        command["sort"] = sort
    explained = await ledger_app.store.db.command("explain", command, verbosity="queryPlanner")
    plan = explained["queryPlanner"]["winningPlan"]
    found = list(stages(plan))

    assert not [s for s in found if s.get("stage") == "COLLSCAN"], f"{what}: a collection scan: {plan}"
    scans = [s for s in found if s.get("stage") in ("IXSCAN", "EXPRESS_IXSCAN")]
    assert [s.get("indexName") for s in scans] == [index], f"{what}: {plan}"
    if bounded:
        assert not [s for s in found if s.get("stage") == "FETCH" and s.get("filter")], f"{what}: {plan}"


@pytest.mark.parametrize("query", [{"_id": "01a2"}, {"_id": {"$in": ["01a2", "01a3"]}}])
async def test_invoices_by_id_are_point_lookups(ledger_app: LedgerApp, query: dict[str, Any]) -> None:
    explained = await ledger_app.store.db.command(
        "explain", {"find": "invoices", "filter": query}, verbosity="queryPlanner"
    )
    plan = explained["queryPlanner"]["winningPlan"]
    found = list(stages(plan))
    assert not [s for s in found if s.get("stage") == "COLLSCAN"], plan
